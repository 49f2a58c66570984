"""Exact inner-product search over fp16 shards, without one fp32 flat index in memory.

CPU (`ShardedFlat`): the shards stay memory-mapped; each block of `chunk_rows` rows is
upcast to fp32, scored against the queries, and only its top k survive, so memory is one
block plus k candidates per query, and the page cache (not the process) holds the vectors.
GPU (`TorchShardedFlat`, behind `faiss_gpu`): the shards are copied as fp16 tensors, round
robin over the visible GPUs (21 M × 768 dims: 32 GB in all, ~4 GB each on 8 GPUs), scored
by fp16 matmul per shard, per-shard top k merged on the host: what Search-R1's sharded
fp16 FAISS-GPU index does, with torch, which is installed, instead of faiss-gpu.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from services.tools.search.shards import iter_fp32

CHUNK_ROWS = 65_536  # 65k × 768 fp32 = 200 MB per block; big enough for BLAS to stream


def merge_topk(scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Best `k` columns per row, by score descending, ties by id ascending (deterministic)."""
    k = min(k, scores.shape[1])
    order = np.lexsort((ids, -scores), axis=1)[:, :k]
    return np.take_along_axis(scores, order, 1), np.take_along_axis(ids, order, 1)


def _block_topk(scores: np.ndarray, base: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k candidates of one block (unordered; `merge_topk` orders them)."""
    ids = np.broadcast_to(np.arange(base, base + scores.shape[1], dtype=np.int64),
                          scores.shape)
    if k < scores.shape[1]:
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        return np.take_along_axis(scores, part, 1), np.take_along_axis(ids, part, 1)
    return scores, np.array(ids)


class ShardedFlat:
    """Exact search over memory-mapped fp16 shards, scored in fp32 blocks on the CPU."""

    def __init__(self, shards: list[np.ndarray], *, chunk_rows: int = CHUNK_ROWS) -> None:
        self._shards = shards
        self._chunk_rows = chunk_rows
        self.dim = int(shards[0].shape[1])
        self.ntotal = sum(int(s.shape[0]) for s in shards)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        q = np.ascontiguousarray(queries, dtype=np.float32)
        best_s = np.empty((len(q), 0), dtype=np.float32)
        best_i = np.empty((len(q), 0), dtype=np.int64)
        for base, block in iter_fp32(self._shards, self._chunk_rows):
            s, i = _block_topk(q @ block.T, base, k)
            best_s, best_i = merge_topk(np.hstack([best_s, s]), np.hstack([best_i, i]), k)
        return best_s, best_i


def cuda_devices(gpu: str) -> list[str]:
    """The CUDA devices to use for `faiss_gpu` = auto/on/off (torch's view of the machine)."""
    if gpu == "off":
        return []
    import torch

    n = torch.cuda.device_count()
    if gpu == "on" and n == 0:
        raise RuntimeError("faiss_gpu=on but torch sees no CUDA device (is this a GPU "
                           "machine with a CUDA build of torch?)")
    return [f"cuda:{i}" for i in range(n)]


class TorchShardedFlat:
    """Exact fp16 search with every shard resident on one of `devices`, round robin.

    On CUDA the matmul runs in fp16 with fp32 accumulation (scores rounded to fp16, ~1e-3,
    before the top k); `devices=["cpu"]` runs the same code on the CPU (tests).
    """

    def __init__(self, shards: list[np.ndarray], devices: list[str]) -> None:
        import torch

        self._torch: Any = torch
        self._parts = []
        base = 0
        for n, shard in enumerate(shards):
            tensor = torch.from_numpy(np.array(shard)).to(devices[n % len(devices)])
            self._parts.append((base, tensor))
            base += shard.shape[0]
        self.dim = int(shards[0].shape[1])
        self.ntotal = base

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        torch = self._torch
        host = torch.from_numpy(np.ascontiguousarray(queries, dtype=np.float32))
        cand_s, cand_i = [], []
        with torch.inference_mode():
            for base, tensor in self._parts:
                scores = host.to(tensor.device, tensor.dtype) @ tensor.T
                top = torch.topk(scores.float(), min(k, tensor.shape[0]), dim=1)
                cand_s.append(top.values.cpu().numpy())
                cand_i.append(top.indices.cpu().numpy().astype(np.int64) + base)
        return merge_topk(np.hstack(cand_s), np.hstack(cand_i), k)
