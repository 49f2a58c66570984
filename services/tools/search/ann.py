"""A compressed FAISS index over the fp16 shards, chosen at build time (`--ann`).

- `ivfpq`: IVF (`nlist` k-means lists, `nprobe` scanned per query) with product-quantised
  residuals of `pq_m` bytes a vector: what a CPU deployment of 21 M passages uses (768 dims,
  PQ96: 2 GB of codes instead of 65 GB fp32).
- `sq8`: every dimension as one byte (a quarter of fp32; 16 GB at 21 M × 768), exhaustive.

`rerank` R > 0 re-scores the ANN's top k·R candidates exactly against the fp16 shards
(memory-mapped: random reads of k·R rows, the shards stay on disk), which recovers most of
what the quantisation loses. Training rows are evenly spaced over the corpus (no RNG), and
FAISS's k-means seed is fixed, so a rebuild trains on the same rows.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from services.tools.search.flat import merge_topk
from services.tools.search.shards import gather_fp32, iter_fp32

INDEX_FILE = "ann.faiss"
AnnKind = Literal["flat", "ivfpq", "sq8"]
ADD_ROWS = 65_536
MIN_POINTS_PER_LIST = 39  # FAISS warns below 39 training points per centroid


class AnnSpec(BaseModel):
    """The index over the shards: `flat` (exact, no extra file) or a compressed one."""

    kind: AnnKind = Field("flat", description="flat (exact over fp16 shards), ivfpq or sq8.")
    nlist: int = Field(0, ge=0, description="ivfpq lists; 0: chosen from the corpus size.")
    pq_m: int = Field(0, ge=0, description="ivfpq bytes per vector; 0: dim / 8.")
    nprobe: int = Field(16, ge=1, description="ivfpq lists scanned per query.")
    rerank: int = Field(0, ge=0, description="Re-score k·rerank candidates on the fp16 "
                                             "shards; 0: no re-scoring.")
    train_rows: int = Field(0, ge=0, description="Training sample; 0: min(N, 64·nlist, "
                                                 "at least 65,536).")


def auto_nlist(n: int) -> int:
    """A power of two near 4·√N (FAISS's rule of thumb), capped so each list trains on ≥ 39
    points: 16,384 at 21 M, 128 at 9,654."""
    want = 2 ** round(math.log2(max(4 * math.sqrt(n), 1)))
    cap = 2 ** int(math.log2(max(n // MIN_POINTS_PER_LIST, 1)))
    return max(1, min(want, cap))


def resolved(spec: AnnSpec, n: int, dim: int) -> AnnSpec:
    """`spec` with the automatic values filled in for N vectors of `dim` dimensions."""
    nlist = spec.nlist or auto_nlist(n)
    pq_m = spec.pq_m or max(1, dim // 8)
    if spec.kind == "ivfpq" and dim % pq_m:
        raise ValueError(f"pq_m={pq_m} does not divide the dimension {dim}")
    train = spec.train_rows or min(n, max(64 * nlist, 65_536))
    return spec.model_copy(update={"nlist": nlist, "pq_m": pq_m, "train_rows": min(train, n)})


def factory_string(spec: AnnSpec) -> str:
    """The `faiss.index_factory` description of a resolved spec."""
    return "SQ8" if spec.kind == "sq8" else f"IVF{spec.nlist},PQ{spec.pq_m}x8"


def build_ann(shards: list[np.ndarray], shard_rows: int, spec: AnnSpec, out: Path) -> None:
    """Train `spec`'s index on evenly spaced rows, add every shard in fp32 blocks, save."""
    import faiss

    n, dim = sum(s.shape[0] for s in shards), int(shards[0].shape[1])
    index = faiss.index_factory(dim, factory_string(spec), faiss.METRIC_INNER_PRODUCT)
    rows = np.unique(np.linspace(0, n - 1, spec.train_rows).round().astype(np.int64))
    index.train(gather_fp32(shards, shard_rows, rows))
    for _, block in iter_fp32(shards, ADD_ROWS):
        index.add(block)
    faiss.write_index(index, str(out))


class AnnIndex:
    """A compressed index, searched with `nprobe`, optionally re-scored on the shards."""

    def __init__(self, path: Path, spec: AnnSpec, shards: list[np.ndarray],
                 shard_rows: int) -> None:
        import faiss

        self._index = faiss.read_index(str(path))
        if spec.kind == "ivfpq":
            self._index.nprobe = spec.nprobe
        self._spec = spec
        self._shards = shards
        self._shard_rows = shard_rows
        self.dim = int(self._index.d)
        self.ntotal = int(self._index.ntotal)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        q = np.ascontiguousarray(queries, dtype=np.float32)
        wide = min(self.ntotal, k * max(1, self._spec.rerank))
        scores, ids = self._index.search(q, wide)
        if not self._spec.rerank:
            return scores[:, :k], ids[:, :k]
        exact = np.full(ids.shape, -np.inf, dtype=np.float32)
        for r in range(len(q)):
            valid = ids[r] >= 0
            vectors = gather_fp32(self._shards, self._shard_rows, ids[r][valid])
            exact[r, valid] = vectors @ q[r]
        return merge_topk(exact, ids.astype(np.int64), k)
