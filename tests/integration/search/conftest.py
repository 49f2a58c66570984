"""Search servers in their own processes, on free ports, owned (and stopped) by the tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from search_servers import CORPUS, SUBSET_LINES, SearchUnderTest, build, start_search


@pytest.fixture(scope="session")
def bm25_index(tmp_path_factory) -> Path:
    """BM25 index of all 9,654 passages, built by the CLI in another process."""
    out = tmp_path_factory.mktemp("search") / "bm25-full"
    result = build(CORPUS, out, "--backend", "bm25")
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="module")
def bm25_server(bm25_index, tmp_path_factory) -> Iterator[SearchUnderTest]:
    server = start_search(bm25_index, tmp_path_factory.mktemp("logs"), "--max-queries", "64",
                          "--max-query-chars", "200", "--max-top-k", "20")
    try:
        yield server
    finally:
        server.process.stop()


@pytest.fixture(scope="session")
def dense_index(request, tmp_path_factory) -> Path:
    """MiniLM index of 300 passages; cached in .pytest_cache (shared with the unit tests)."""
    cache = (Path(request.config.cache.mkdir("paretopo-search"))
             if hasattr(request.config, "cache")  # absent under -p no:cacheprovider
             else tmp_path_factory.mktemp("paretopo-search"))
    corpus = cache / "sub300.jsonl"
    lines = b"".join(CORPUS.read_bytes().splitlines(keepends=True)[slice(*SUBSET_LINES)])
    if not corpus.exists() or corpus.read_bytes() != lines:
        corpus.write_bytes(lines)
    out = cache / "dense-minilm-sub300"
    result = build(corpus, out, "--backend", "dense", "--model", "all-MiniLM-L6-v2",
                   "--device", "cpu", "--shard-rows", "64", "--reuse")
    assert result.returncode == 0, result.stderr
    return out
