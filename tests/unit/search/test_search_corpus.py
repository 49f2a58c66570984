"""Corpus reading (validation naming the line) and the memory-mapped passage store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from paretopo.corpus import (
    CorpusError,
    Passage,
    PassageStore,
    file_sha256,
    read_corpus,
    write_store,
)

GOOD = json.dumps({"id": "a", "title": "T", "text": "x"})


def write(tmp_path: Path, *lines: str | bytes) -> Path:
    path = tmp_path / "c.jsonl"
    path.write_bytes(b"".join((ln if isinstance(ln, bytes) else ln.encode()) + b"\n"
                              for ln in lines))
    return path


@pytest.mark.parametrize(("bad", "words"), [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "expected a JSON object"),
    (json.dumps({"id": "b", "title": "T"}), "'text' is missing"),
    (json.dumps({"id": 7, "title": "T", "text": "x"}), "'id' is missing or not a string"),
    (json.dumps({"id": " ", "title": "T", "text": "x"}), "'id' is empty"),
    (json.dumps({"id": "b", "title": "", "text": " "}), "both 'title' and 'text' are empty"),
    (GOOD, "duplicate id 'a'"),
    (b'{"id": "b", "title": "\xff", "text": "x"}', "not valid UTF-8"),
])
def test_malformed_line_is_named(tmp_path, bad, words) -> None:
    path = write(tmp_path, GOOD, "", bad)
    with pytest.raises(CorpusError) as info:
        list(read_corpus(path))
    assert f"{path} line 3" in str(info.value)
    assert words in str(info.value)


def test_blank_lines_skipped_and_limit(tmp_path) -> None:
    lines = [json.dumps({"id": str(i), "title": f"t{i}", "text": "x"}) for i in range(5)]
    path = write(tmp_path, lines[0], "  ", *lines[1:])
    assert [p.id for p in read_corpus(path)] == ["0", "1", "2", "3", "4"]
    assert [p.id for p in read_corpus(path, limit=2)] == ["0", "1"]


def test_store_round_trip_with_unicode(tmp_path) -> None:
    passages = [Passage("a", "Zürich", "naïve – text"), Passage("b", "", "only text"),
                Passage("c", "T", 'quote " and \\ and\nnewline')]
    write_store(passages, tmp_path)
    store = PassageStore(tmp_path)
    try:
        assert len(store) == 3
        assert [store.get(i) for i in range(3)] == passages
        with pytest.raises(IndexError):
            store.get(3)
    finally:
        store.close()


def test_store_detects_a_truncated_file(tmp_path) -> None:
    write_store([Passage("a", "T", "text")], tmp_path)
    (tmp_path / "passages.jsonl").write_bytes(b"{}")
    with pytest.raises(CorpusError, match="rebuild the index"):
        PassageStore(tmp_path)


def test_sha256_changes_with_content(tmp_path) -> None:
    a = write(tmp_path, GOOD)
    first = file_sha256(a)
    a.write_text(GOOD + "\n\n")
    assert file_sha256(a) != first and len(first) == 64


def test_duplicate_found_after_many_ids_and_beyond_a_limit_ignored(tmp_path) -> None:
    """Ids are checked as 8-byte hashes in a growing buffer (no set of strings for 21 M
    passages): a repeat far apart is still named with both lines; one past `limit` is not read."""
    lines = [json.dumps({"id": f"p{i}", "title": "t", "text": "x"}) for i in range(70_000)]
    lines.append(lines[5])
    path = write(tmp_path, *lines)
    with pytest.raises(CorpusError, match="line 70001: duplicate id 'p5' \\(first on line 6\\)"):
        list(read_corpus(path))
    assert len(list(read_corpus(path, limit=70_000))) == 70_000
