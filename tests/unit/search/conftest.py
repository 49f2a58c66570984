"""Fixtures for the search unit tests: real Wikipedia passages and NQ questions, small indexes."""

from __future__ import annotations

from pathlib import Path

import pytest
from search_testdata import CORPUS, SHARD_ROWS, write_subset

from services.tools.search.index import BuildOptions, build_index, is_current


@pytest.fixture(scope="session")
def subset_corpus(tmp_path_factory) -> Path:
    return write_subset(tmp_path_factory.mktemp("corpus") / "sub300.jsonl")


@pytest.fixture(scope="session")
def bm25_full_index(tmp_path_factory) -> Path:
    """BM25 index of all 9,654 passages (about a second to build)."""
    out = tmp_path_factory.mktemp("idx") / "bm25-full"
    build_index(CORPUS, out, BuildOptions(backend="bm25"))
    return out


@pytest.fixture(scope="session")
def dense_subset_index(request, tmp_path_factory) -> Path:
    """MiniLM dense index of the 300-passage subset, cached across runs in .pytest_cache.

    Embedding 300 passages takes 10-20 s on two busy cores; the manifest's corpus hash and
    model decide whether the cached index is still valid.
    """
    cache = (Path(request.config.cache.mkdir("paretopo-search"))
             if hasattr(request.config, "cache")  # absent under -p no:cacheprovider
             else tmp_path_factory.mktemp("paretopo-search"))
    corpus = write_subset(cache / "sub300.jsonl")
    out = cache / "dense-minilm-sub300"
    options = BuildOptions(backend="dense", model="all-MiniLM-L6-v2", device="cpu",
                           shard_rows=SHARD_ROWS)
    if not is_current(out, corpus, options):
        build_index(corpus, out, options)
    return out
