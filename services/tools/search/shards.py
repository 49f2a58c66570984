"""Embeddings on disk: fixed-size fp16 shard files plus a progress record, for resumable builds.

`emb/00000.npy`, `emb/00001.npy`, … each hold `shard_rows` rows (the last one fewer) of
L2-normalised fp16 embeddings, in corpus order. A shard is written to a temporary name,
fsynced and renamed, and only then counted in `progress.json` (itself replaced atomically),
so after a `kill -9` every shard the record counts is whole and the build resumes after it.
fp16 halves the fp32 size (21 M × 768 dims: 32 GB instead of 65 GB); the rounding error of a
unit vector's components (≤ 2⁻¹¹ relative) moves cosine scores by ~1e-4.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

SUBDIR = "emb"
PROGRESS_FILE = "progress.json"
DTYPE = np.float16


def shard_path(index_dir: Path, number: int) -> Path:
    return index_dir / SUBDIR / f"{number:05d}.npy"


def num_shards(num_rows: int, shard_rows: int) -> int:
    return -(-num_rows // shard_rows)


def shard_paths(index_dir: Path, num_rows: int, shard_rows: int) -> list[Path]:
    """Every shard file an index of `num_rows` rows holds."""
    return [shard_path(index_dir, s) for s in range(num_shards(num_rows, shard_rows))]


def _fsync_replace(tmp: Path, final: Path) -> None:
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, final)


def write_shard(index_dir: Path, number: int, emb: np.ndarray) -> None:
    """Write shard `number` whole or not at all (a rename is atomic)."""
    final = shard_path(index_dir, number)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(final.name + ".tmp")
    with open(tmp, "wb") as fh:
        np.save(fh, np.ascontiguousarray(emb, dtype=DTYPE))
    _fsync_replace(tmp, final)


def write_json_atomic(path: Path, obj: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
    _fsync_replace(tmp, path)


def read_progress(index_dir: Path) -> dict:
    path = index_dir / PROGRESS_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def record_progress(index_dir: Path, **fields: object) -> None:
    """Merge `fields` into the progress record (atomically)."""
    write_json_atomic(index_dir / PROGRESS_FILE, {**read_progress(index_dir), **fields})


def open_shards(index_dir: Path, num_rows: int, shard_rows: int) -> list[np.ndarray]:
    """Memory-map every shard read-only; check the row counts add up to `num_rows`."""
    shards = [np.load(p, mmap_mode="r") for p in shard_paths(index_dir, num_rows, shard_rows)]
    rows = sum(s.shape[0] for s in shards)
    if rows != num_rows or any(s.dtype != DTYPE or s.ndim != 2 for s in shards):
        raise ValueError(f"{index_dir / SUBDIR}: shards hold {rows} rows, the manifest says "
                         f"{num_rows} (or a shard is not 2-D fp16); rebuild the index")
    return shards


def iter_fp32(shards: list[np.ndarray], chunk_rows: int) -> Iterator[tuple[int, np.ndarray]]:
    """(first row, fp32 block) over all shards, `chunk_rows` at a time (bounded memory)."""
    base = 0
    for shard in shards:
        for start in range(0, shard.shape[0], chunk_rows):
            yield base + start, np.asarray(shard[start:start + chunk_rows], dtype=np.float32)
        base += shard.shape[0]


def gather_fp32(shards: list[np.ndarray], shard_rows: int, rows: np.ndarray) -> np.ndarray:
    """fp32 rows `rows` (global numbers) read from the memory-mapped shards."""
    out = np.empty((len(rows), shards[0].shape[1]), dtype=np.float32)
    for j, row in enumerate(rows):
        out[j] = shards[int(row) // shard_rows][int(row) % shard_rows]
    return out
