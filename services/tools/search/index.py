"""Search indexes on disk: build, save and load, with a manifest that says what they hold.

An index directory holds `manifest.json` (backend, model, prefixes, corpus hash, count),
the passage store (`passages.jsonl` + `offsets.npy`) and the backend's files (`bm25/` or
`faiss.index`). The manifest is written last, into a temporary directory renamed into place,
so a directory with a manifest is a complete index.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from paretopo.corpus import (
    OFFSETS_FILE,
    PASSAGES_FILE,
    Passage,
    PassageStore,
    file_sha256,
    read_corpus,
    write_store,
)
from services.tools.search import bm25, dense
from services.tools.search.service import Retriever

MANIFEST_FILE = "manifest.json"
FORMAT_VERSION = 1
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
    build_seconds: float = Field(ge=0, description="Wall time of the build.")
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
        and m.passage_prefix == options.passage_prefix)
    return (m.format_version == FORMAT_VERSION and m.backend == options.backend and same_model
            and m.corpus_sha256 == file_sha256(corpus))


def build_index(corpus: Path, out_dir: Path, options: BuildOptions, *,
                progress: Callable[[int, int], None] | None = None,
                show_progress: bool = False) -> Manifest:
    """Read and validate `corpus`, build the index, and move it into `out_dir`.

    An existing index in `out_dir` is replaced; any other existing content is refused.
    `progress(n, total)` reports `n` more passages indexed (bm25) or embedded (dense).
    """
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / MANIFEST_FILE).exists():
        raise FileExistsError(f"{out_dir} exists and is not a search index; refusing to "
                              f"overwrite it")
    started = time.monotonic()
    sha = file_sha256(corpus)
    passages: list[Passage] = list(read_corpus(corpus, limit=options.limit))
    if not passages:
        raise ValueError(f"{corpus} holds no passages")
    tmp = out_dir.with_name(f".{out_dir.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        write_store(passages, tmp)
        dim, model, query_prefix, passage_prefix = 0, bm25.DESCRIPTION, "", ""
        if options.backend == "bm25":
            bm25.build_bm25(passages, tmp, show_progress=show_progress)
            if progress is not None:
                progress(len(passages), len(passages))
        else:
            model, query_prefix, passage_prefix = (options.model, options.query_prefix,
                                                   options.passage_prefix)
            dim = dense.build_dense(passages, tmp, model_name=model, passage_prefix=passage_prefix,
                                    batch_size=options.batch_size, device=options.device,
                                    progress=None if progress is None else
                                    (lambda n: progress(n, len(passages))))
        manifest = Manifest(backend=options.backend, model=model, query_prefix=query_prefix,
                            passage_prefix=passage_prefix, dim=dim, corpus_path=str(corpus),
                            corpus_sha256=sha, num_passages=len(passages),
                            build_seconds=time.monotonic() - started, created_unix=time.time())
        (tmp / MANIFEST_FILE).write_text(json.dumps(manifest.model_dump(), indent=2) + "\n")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return manifest


def required_files(index_dir: Path, manifest: Manifest) -> list[Path]:
    """Every file `load_index` reads for this manifest."""
    files = [index_dir / PASSAGES_FILE, index_dir / OFFSETS_FILE]
    if manifest.backend == "bm25":
        files += [index_dir / bm25.SUBDIR / name for name in bm25.INDEX_FILES]
    else:
        files.append(index_dir / dense.INDEX_FILE)
    return files


def load_index(index_dir: Path, *, model_path: str | None = None, device: str = "auto",
               gpu: dense.GpuMode = "auto") -> tuple[Retriever, PassageStore, Manifest]:
    """Open an index directory; raise `IndexMissing` naming the first absent file.

    `model_path` loads the manifest's dense model from another place (same weights, e.g. a
    copy on the serving machine).
    """
    manifest = read_manifest(index_dir)
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
        retriever = dense.DenseRetriever(
            index_dir, model_name=model_path or manifest.model,
            query_prefix=manifest.query_prefix, num_passages=manifest.num_passages,
            device=device, gpu=gpu)
    return retriever, store, manifest
