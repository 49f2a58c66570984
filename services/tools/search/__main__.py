"""Serve the search tool over gRPC: `python -m services.tools.search --index-dir DIR`.

Every flag overrides its `PARETOPO_SEARCH_*` environment variable. The index is loaded before
the port is bound; a missing index file stops the server with a message naming the file.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from pydantic import ValidationError

from services.tools.search.config import SearchSettings

if TYPE_CHECKING:
    from services.tools.search.index import Manifest
    from services.tools.search.service import SearchService

log = logging.getLogger("services.tools.search")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m services.tools.search",
                                description="Search (retrieval) tool server (gRPC).")
    for name, field in SearchSettings.model_fields.items():
        flag = "--" + name.replace("_", "-")
        p.add_argument(flag, dest=name, default=None, help=field.description)
    p.add_argument("--dry-run", action="store_true", help="print the configuration and exit")
    return p.parse_args(argv)


def build_service(settings: SearchSettings) -> tuple[SearchService, Manifest]:
    """Load the index and wrap it in the service object (before any port is bound)."""
    from services.tools.search.index import load_index
    from services.tools.search.service import SearchService

    retriever, store, manifest = load_index(settings.index_dir, model_path=settings.model_path,
                                            device=settings.device, gpu=settings.faiss_gpu,
                                            ann_override=settings.ann_override)
    if settings.torch_threads and manifest.backend == "dense":
        import torch

        torch.set_num_threads(settings.torch_threads)
    service = SearchService(retriever, store, limits=settings.limits,
                            corpus_sha256=manifest.corpus_sha256)
    return service, manifest


async def serve(settings: SearchSettings, service: SearchService, manifest: Manifest) -> None:
    from paretopo.grpc_util import GrpcServer
    from services.tools.search.grpc import SearchServicer, registrar
    from services.tools.search.metrics import SearchMetrics

    metrics = SearchMetrics()
    executor = ThreadPoolExecutor(settings.workers, thread_name_prefix="search")
    server = GrpcServer(registrar(SearchServicer(service, metrics, executor)),
                        host=settings.host, port=settings.port, grace_s=settings.grace_s)
    http = metrics.serve(settings.metrics_port, settings.host) if settings.metrics_port else None
    log.info("search: %s index of %d passages from %s; gRPC %s:%d, metrics %s",
             manifest.backend, manifest.num_passages, settings.index_dir, settings.host,
             server.port, settings.metrics_port or "off")

    async def on_stop() -> None:
        if http is not None:
            http.shutdown()
        executor.shutdown(wait=True)
        service.close()

    await server.serve_until_signal(on_stop)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    overrides = {k: v for k, v in vars(args).items() if k != "dry_run" and v is not None}
    try:
        settings = SearchSettings(**overrides)
    except ValidationError as err:
        print(f"error: bad search configuration:\n{err}", file=sys.stderr)
        return 2
    if args.dry_run:
        print(settings.model_dump_json(indent=2))
        return 0
    logging.basicConfig(level=settings.log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        service, manifest = build_service(settings)
    except (OSError, ValueError, RuntimeError) as err:
        # A missing or inconsistent index: refuse to start, naming the file (IndexMissing).
        print(f"error: cannot load the search index: {err}", file=sys.stderr)
        return 2
    asyncio.run(serve(settings, service, manifest))
    return 0


if __name__ == "__main__":
    sys.exit(main())
