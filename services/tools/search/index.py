"""Search indexes on disk: build, save and load, with a manifest that says what they hold.

An index directory holds `manifest.json` (backend, model, prefixes, corpus hash, count,
shard size and ANN spec), the passage store (`passages.jsonl` + `offsets.npy`) and the
backend's files (`bm25/`, or `emb/NNNNN.npy` fp16 shards and optionally `ann.faiss`).

The build streams: the corpus is read once into the store, then the shards are embedded
from the memory-mapped store one at a time. It works in `.<out>.partial/`, a fixed name, so
a build killed at any point (even `kill -9`) is resumed by the next one with the same
corpus and options: the store if it was finished, then every shard `progress.json` counts
(`build.json` records what is being built; anything else starts afresh). The manifest is
written last and the directory renamed into place, so a directory with a manifest is a
complete index. A lock file keeps two builds out of the same partial directory.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from paretopo.corpus import OFFSETS_FILE, PASSAGES_FILE, PassageStore, file_sha256, read_corpus
from services.tools.search import ann, bm25, dense, flat, shards
from services.tools.search.ann import AnnSpec
from services.tools.search.service import Retriever
from services.tools.search.store_stream import write_store_stream

MANIFEST_FILE = "manifest.json"
BUILD_FILE = "build.json"
FORMAT_VERSION = 2  # 1: one fp32 faiss.index; 2: fp16 shards (+ optional ann.faiss)
DEFAULT_SHARD_ROWS = 262_144  # 384 MB of fp16 at 768 dims; ~2 min of GPU embedding to redo
BackendName = Literal["bm25", "dense"]


class IndexMissing(FileNotFoundError):
    """A file an index needs is absent; the message names it."""


class Manifest(BaseModel):
    """What an index directory holds."""

    format_version: int = Field(FORMAT_VERSION, description="Layout version of the directory.")
    backend: BackendName = Field(description="Retrieval backend.")
    model: str = Field(description="Embedding model (dense) or tokenizer description (bm25).")
    query_prefix: str = Field("", description="Prepended to every query before embedding.")
    passage_prefix: str = Field("", description="Prepended to every passage before embedding.")
    dim: int = Field(0, ge=0, description="Embedding dimension (dense); 0 for bm25.")
    corpus_path: str = Field(description="Corpus file the index was built from.")
    corpus_sha256: str = Field(description="Hex SHA-256 of that file's bytes.")
    num_passages: int = Field(ge=0, description="Passages in the index.")
    shard_rows: int = Field(0, ge=0, description="Rows per fp16 embedding shard (dense).")
    ann: AnnSpec = Field(default_factory=AnnSpec,
                         description="Index over the shards (dense), values resolved.")
    build_seconds: float = Field(ge=0, description="Wall time of the last build run (a "
                                                   "resumed build counts only its own run).")
    created_unix: float = Field(description="Build time, seconds since the epoch.")


@dataclass(frozen=True)
class BuildOptions:
    """How to build an index (dense options are ignored by bm25)."""

    backend: BackendName = "bm25"
    model: str = dense.DEFAULT_MODEL
    query_prefix: str = ""
    passage_prefix: str = ""
    batch_size: int = 64
    device: str = "auto"
    limit: int | None = None
    shard_rows: int = DEFAULT_SHARD_ROWS
    ann: AnnSpec = field(default_factory=AnnSpec)
    torch_threads: int = 0  # 0: torch's default; 1 makes embeddings reproducible bit for bit

    def identity(self, corpus_sha256: str) -> dict:
        """What a partial build must match to be resumed (not batch size, device, threads)."""
        keep = {"backend", "model", "query_prefix", "passage_prefix", "limit", "shard_rows"}
        out = {k: v for k, v in asdict(self).items() if k in keep}
        return {**out, "ann": self.ann.model_dump(), "corpus_sha256": corpus_sha256,
                "format_version": FORMAT_VERSION}


def read_manifest(index_dir: Path) -> Manifest:
    path = index_dir / MANIFEST_FILE
    if not path.is_file():
        raise IndexMissing(f"search index manifest not found: {path} (build one with "
                           f"`python -m services.tools.search.build_index`)")
    return Manifest.model_validate_json(path.read_text())


def is_current(index_dir: Path, corpus: Path, options: BuildOptions) -> bool:
    """True when `index_dir` already holds an index of `corpus` built with `options`."""
    try:
        m = read_manifest(index_dir)
    except (IndexMissing, ValueError):
        return False
    same_model = options.backend == "bm25" or (
        m.model == options.model and m.query_prefix == options.query_prefix
        and m.passage_prefix == options.passage_prefix and m.shard_rows == options.shard_rows
        and m.ann.kind == options.ann.kind and _same_ann(m, options.ann))
    return (m.format_version == FORMAT_VERSION and m.backend == options.backend and same_model
            and m.corpus_sha256 == file_sha256(corpus))


def _same_ann(m: Manifest, spec: AnnSpec) -> bool:
    """An explicitly asked value must match; 0 ("automatic") matches what was resolved."""
    asked = spec.model_dump()
    return all(v == 0 or v == getattr(m.ann, k) for k, v in asked.items() if k != "kind")


@contextmanager
def _locked(tmp: Path) -> Iterator[None]:
    """Hold an exclusive lock beside `tmp` (released by the kernel if the build dies)."""
    lock = tmp.with_name(tmp.name + ".lock")
    with open(lock, "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as err:
            raise FileExistsError(f"another build is writing {tmp}; wait for it") from err
        try:
            yield
        finally:
            lock.unlink(missing_ok=True)


def partial_build(out_dir: Path, corpus: Path, options: BuildOptions) -> dict:
    """The progress of a resumable partial build of `corpus` into `out_dir` ({} if none)."""
    tmp = out_dir.with_name(f".{out_dir.name}.partial")
    build = tmp / BUILD_FILE
    if not build.is_file() or json.loads(build.read_text()) != options.identity(
            file_sha256(corpus)):
        return {}
    return shards.read_progress(tmp)


def _prepare_partial(tmp: Path, identity: dict) -> dict:
    """Keep `tmp` when it is a partial build of the same thing; return its progress."""
    build = tmp / BUILD_FILE
    if build.is_file() and json.loads(build.read_text()) == identity:
        return shards.read_progress(tmp)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    shards.write_json_atomic(build, identity)
    return {}


def build_index(corpus: Path, out_dir: Path, options: BuildOptions, *,
                progress: Callable[[int, int], None] | None = None,
                show_progress: bool = False) -> Manifest:
    """Build (or resume building) the index of `corpus` and move it into `out_dir`.

    An existing index in `out_dir` is replaced; any other existing content is refused.
    `progress(n, total)` reports `n` more passages stored, indexed (bm25) or embedded
    (dense; a resumed build first reports the shards already done).
    """
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / MANIFEST_FILE).exists():
        raise FileExistsError(f"{out_dir} exists and is not a search index; refusing to "
                              f"overwrite it")
    started = time.monotonic()
    sha = file_sha256(corpus)
    tmp = out_dir.with_name(f".{out_dir.name}.partial")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with _locked(tmp):
        done = _prepare_partial(tmp, options.identity(sha))
        if not done.get("store"):
            _write_store(corpus, tmp, options.limit)
        manifest = _build_backend(tmp, corpus, sha, options, done, progress, show_progress)
        manifest.build_seconds = time.monotonic() - started
        for leftover in (shards.PROGRESS_FILE, BUILD_FILE):
            (tmp / leftover).unlink()
        (tmp / MANIFEST_FILE).write_text(json.dumps(manifest.model_dump(), indent=2) + "\n")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    return manifest


def _write_store(corpus: Path, tmp: Path, limit: int | None) -> None:
    """Stream the corpus into the store; a bad corpus leaves no partial build behind."""
    try:
        n = write_store_stream(read_corpus(corpus, limit=limit), tmp)
        if n == 0:
            raise ValueError(f"{corpus} holds no passages")
    except ValueError:  # CorpusError included: nothing worth resuming
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shards.record_progress(tmp, store=True)


def _build_backend(tmp: Path, corpus: Path, sha: str, options: BuildOptions, done: dict,
                   progress: Callable[[int, int], None] | None,
                   show_progress: bool) -> Manifest:
    """Index the finished store in `tmp` with the chosen backend; the manifest to write."""
    store = PassageStore(tmp)
    total = len(store)
    report = None if progress is None else (lambda n: progress(n, total))
    common = {"backend": options.backend, "corpus_path": str(corpus), "corpus_sha256": sha,
              "num_passages": total, "build_seconds": 0.0, "created_unix": time.time()}
    try:
        if options.backend == "bm25":
            bm25.build_bm25([store.get(i) for i in range(total)], tmp,
                            show_progress=show_progress)
            if report is not None:
                report(total)
            return Manifest(model=bm25.DESCRIPTION, **common)
        dim, spec = _build_dense(tmp, store, options, done, report)
    finally:
        store.close()
    return Manifest(model=options.model, query_prefix=options.query_prefix,
                    passage_prefix=options.passage_prefix, dim=dim,
                    shard_rows=options.shard_rows, ann=spec, **common)


def _build_dense(tmp: Path, store: PassageStore, options: BuildOptions, done: dict,
                 report: Callable[[int], None] | None) -> tuple[int, AnnSpec]:
    """Embed the missing shards, then the compressed index if asked for; (dim, spec)."""
    first = int(done.get("shards_done", 0))
    if report is not None and first:
        report(min(len(store), first * options.shard_rows))
    if options.torch_threads:
        import torch

        torch.set_num_threads(options.torch_threads)
    model = dense.load_model(options.model, device=options.device)
    dim = dense.embedding_dim(model)
    dense.embed_shards(store, tmp, model=model, passage_prefix=options.passage_prefix,
                       shard_rows=options.shard_rows, first_shard=first,
                       batch_size=options.batch_size, progress=report)
    spec = ann.resolved(options.ann, len(store), dim)
    if spec.kind != "flat":
        vectors = shards.open_shards(tmp, len(store), options.shard_rows)
        ann.build_ann(vectors, options.shard_rows, spec, tmp / ann.INDEX_FILE)
    return dim, spec


def required_files(index_dir: Path, manifest: Manifest) -> list[Path]:
    """Every file `load_index` reads for this manifest."""
    files = [index_dir / PASSAGES_FILE, index_dir / OFFSETS_FILE]
    if manifest.backend == "bm25":
        files += [index_dir / bm25.SUBDIR / name for name in bm25.INDEX_FILES]
    else:
        files += shards.shard_paths(index_dir, manifest.num_passages, manifest.shard_rows)
        if manifest.ann.kind != "flat":
            files.append(index_dir / ann.INDEX_FILE)
    return files


def open_vectors(index_dir: Path, manifest: Manifest, *, gpu: dense.GpuMode = "auto",
                 ann_override: dict | None = None) -> dense.VectorIndex:
    """The passage-side index: exact over the shards (GPU when asked and present, else CPU
    blocks) or the compressed one; `ann_override` changes `nprobe` / `rerank` for serving."""
    vectors = shards.open_shards(index_dir, manifest.num_passages, manifest.shard_rows)
    if manifest.ann.kind != "flat":
        spec = manifest.ann.model_copy(update=ann_override or {})
        return ann.AnnIndex(index_dir / ann.INDEX_FILE, spec, vectors, manifest.shard_rows)
    devices = flat.cuda_devices(gpu)
    return flat.TorchShardedFlat(vectors, devices) if devices else flat.ShardedFlat(vectors)


def load_index(index_dir: Path, *, model_path: str | None = None, device: str = "auto",
               gpu: dense.GpuMode = "auto", ann_override: dict | None = None,
               ) -> tuple[Retriever, PassageStore, Manifest]:
    """Open an index directory; raise `IndexMissing` naming the first absent file.

    `model_path` loads the manifest's dense model from another place (same weights, e.g. a
    copy on the serving machine).
    """
    manifest = read_manifest(index_dir)
    if manifest.backend == "dense" and manifest.format_version < FORMAT_VERSION:
        raise ValueError(f"{index_dir} is a dense index of format {manifest.format_version} "
                         f"(one fp32 faiss.index); rebuild it (fp16 shards)")
    for path in required_files(index_dir, manifest):
        if not path.is_file():
            raise IndexMissing(f"search index file not found: {path} (index {index_dir} is "
                               f"incomplete; rebuild it)")
    store = PassageStore(index_dir)
    if len(store) != manifest.num_passages:
        store.close()
        raise ValueError(f"{index_dir}: the store holds {len(store)} passages but the manifest "
                         f"says {manifest.num_passages}; rebuild the index")
    retriever: Retriever
    if manifest.backend == "bm25":
        retriever = bm25.Bm25Retriever(index_dir, num_passages=manifest.num_passages)
    else:
        vectors = open_vectors(index_dir, manifest, gpu=gpu, ann_override=ann_override)
        retriever = dense.DenseRetriever(vectors, model_name=model_path or manifest.model,
                                         query_prefix=manifest.query_prefix, device=device)
    return retriever, store, manifest
