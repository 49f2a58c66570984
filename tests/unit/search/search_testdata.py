"""Where the real data for the search tests lives (read-only; never copied into the repo)."""

from __future__ import annotations

from pathlib import Path

DATA = Path("/work/shared/data/qa")
CORPUS = DATA / "wiki18_passages_sample.jsonl"
NQ = DATA / "nq_test_sample1000.jsonl"
# The corpus keeps Search-R1's retrieval-log order: lines 291-590 are the passages retrieved
# for the first NQ sample questions, so the first 100 of them are a fair retrieval test on
# this 300-passage subset (BM25 recall@3 there: 0.62; over the full corpus: 0.599).
SUBSET_LINES = (290, 590)
SHARD_ROWS = 64  # the cached dense subset index: five shards, so merging is exercised


def write_subset(path: Path) -> Path:
    lines = CORPUS.read_bytes().splitlines(keepends=True)[slice(*SUBSET_LINES)]
    if not path.exists() or path.read_bytes() != b"".join(lines):
        path.write_bytes(b"".join(lines))
    return path
