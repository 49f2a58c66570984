"""Index build/save/load: manifest, caching, refusal to clobber, missing files named, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.tools.search import build_index as cli
from services.tools.search.index import (
    BuildOptions,
    IndexMissing,
    build_index,
    is_current,
    load_index,
    read_manifest,
)


def corpus(tmp_path: Path, n: int = 20) -> Path:
    path = tmp_path / "corpus.jsonl"
    topics = ["volcano lava eruption", "violin orchestra music", "glacier ice climate"]
    path.write_text("".join(json.dumps({"id": f"p{i}", "title": f"Doc {i}",
                                        "text": f"{topics[i % 3]} number {i}"}) + "\n"
                            for i in range(n)))
    return path


def test_build_writes_a_complete_manifest(tmp_path) -> None:
    src = corpus(tmp_path)
    m = build_index(src, tmp_path / "idx", BuildOptions(backend="bm25"))
    assert read_manifest(tmp_path / "idx") == m
    assert (m.backend, m.num_passages, m.dim, m.corpus_path) == ("bm25", 20, 0, str(src))
    retriever, store, _ = load_index(tmp_path / "idx")
    hits = retriever.search(["lava volcano"], 3)[0]
    assert len(hits) == 3 and all(store.get(i).text.startswith("volcano") for i, _ in hits)
    assert not list(tmp_path.glob(".idx.partial*"))


def test_is_current_tracks_corpus_bytes_backend_and_model(tmp_path) -> None:
    src = corpus(tmp_path)
    out = tmp_path / "idx"
    assert not is_current(out, src, BuildOptions())
    build_index(src, out, BuildOptions())
    assert is_current(out, src, BuildOptions())
    assert not is_current(out, src, BuildOptions(backend="dense"))
    src.write_text(src.read_text() + json.dumps({"id": "new", "title": "N", "text": "t"}) + "\n")
    assert not is_current(out, src, BuildOptions())


def test_rebuild_replaces_an_index_but_not_other_directories(tmp_path) -> None:
    src = corpus(tmp_path)
    out = tmp_path / "idx"
    build_index(src, out, BuildOptions())
    assert build_index(src, out, BuildOptions(limit=5)).num_passages == 5
    other = tmp_path / "precious"
    other.mkdir()
    (other / "thesis.tex").write_text("do not delete")
    with pytest.raises(FileExistsError, match="not a search index"):
        build_index(src, other, BuildOptions())
    assert (other / "thesis.tex").exists()


def test_empty_corpus_is_refused(tmp_path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(ValueError, match="holds no passages"):
        build_index(empty, tmp_path / "idx", BuildOptions())


@pytest.mark.parametrize("victim", ["manifest.json", "passages.jsonl", "offsets.npy",
                                    "bm25/vocab.tokenizer.json", "bm25/data.csc.index.npy"])
def test_missing_file_is_named(tmp_path, victim) -> None:
    out = tmp_path / "idx"
    build_index(corpus(tmp_path), out, BuildOptions())
    (out / victim).unlink()
    with pytest.raises(IndexMissing) as info:
        load_index(out)
    assert str(out / victim) in str(info.value)


def test_cli_builds_and_reuses(tmp_path, capsys) -> None:
    src, out = corpus(tmp_path), tmp_path / "idx"
    assert cli.main(["--corpus", str(src), "--out", str(out), "--no-progress"]) == 0
    assert "wrote" in capsys.readouterr().err
    built = read_manifest(out).created_unix
    assert cli.main(["--corpus", str(src), "--out", str(out), "--reuse", "--no-progress"]) == 0
    assert "kept" in capsys.readouterr().err
    assert read_manifest(out).created_unix == built


def test_cli_names_the_malformed_line(tmp_path, capsys) -> None:
    src = corpus(tmp_path, 4)
    src.write_text(src.read_text() + '{"id": "x", "title": "no text"}\n')
    rc = cli.main(["--corpus", str(src), "--out", str(tmp_path / "idx"), "--no-progress"])
    assert rc == 2
    err = capsys.readouterr().err
    assert f"{src} line 5" in err.replace("\n", "") and "'text'" in err
    assert not (tmp_path / "idx").exists()


def test_cli_missing_corpus(tmp_path, capsys) -> None:
    rc = cli.main(["--corpus", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "i")])
    assert rc == 2 and "nope.jsonl" in capsys.readouterr().err
