"""`python -m services.archive`: serve the archive over gRPC and REST from one process.

    python -m services.archive --grpc-port 50051 --http-port 8080 --redis-url redis://...

Flags override `PARETOPO_ARCHIVE_*` environment variables. Without a Redis URL an embedded
redis-server is started under `--redis-dir` (fine for one machine; use a real Redis with
append-only persistence in production). `--http-workers N` serves REST from N processes
sharing the port (see `services.archive.workers`). On SIGTERM or SIGINT every part stops,
the workers and the embedded redis-server included; if this process is killed outright,
they exit with it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import signal
import tempfile

from services.archive.settings import ArchiveSettings
from services.archive.workers import run_loop

log = logging.getLogger("services.archive")


def parse_settings(argv: list[str] | None = None) -> ArchiveSettings:
    parser = argparse.ArgumentParser(prog="python -m services.archive", description=__doc__)
    for name, field in ArchiveSettings.model_fields.items():
        flag = "--" + name.replace("_", "-")
        if field.annotation is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None,
                                help=field.description)
        else:
            parser.add_argument(flag, default=None, help=field.description)
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in vars(args).items() if v is not None}
    return ArchiveSettings(**overrides)


async def serve(settings: ArchiveSettings) -> None:
    from paretopo.grpc_util import GrpcServer
    from services.archive.changes import ChangeFeed
    from services.archive.grpc import ArchiveServicer, registrar
    from services.archive.http import serving_app
    from services.archive.service import ArchiveService
    from services.archive.store import ArchiveStore
    from services.archive.workers import (
        RestWorkers,
        bind_socket,
        http_server,
        quiet_gc,
        worker_settings_json,
    )

    # Handlers first: a signal that arrives while Redis or gRPC start still stops everything.
    signals: list[int] = []
    http = None

    def on_signal(sig: int) -> None:
        signals.append(sig)
        if http is not None:
            http.handle_exit(sig, None)

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)

    embedded = grpc_server = store = sock = workers = watcher = changes = None
    try:
        redis_url = settings.redis_url
        if redis_url is None:
            from paretopo.redis_server import EmbeddedRedis

            embedded = EmbeddedRedis(settings.redis_dir, stop_with_parent=True).start()
            redis_url = embedded.url
            log.warning("no Redis URL given: started an embedded redis-server at %s (pid %d, "
                        "data in %s)", redis_url, embedded.pid, settings.redis_dir)
        store = ArchiveStore.from_url(redis_url, namespace=settings.namespace)
        changes = ChangeFeed.for_client(store.client, store.keys.any_run)
        if changes is not None:
            changes.start()
        service = ArchiveService(store, changes)
        secret = settings.write_token.get_secret_value() if settings.write_token else None
        reader = settings.read_token.get_secret_value() if settings.read_token else None
        sock = bind_socket(settings.host, settings.http_port)
        if settings.http_workers > 1:
            # before gRPC starts its threads, which a fork (even one followed by exec) warns of
            workers = RestWorkers(settings.http_workers - 1, sock,
                                  worker_settings_json(settings, redis_url))
            workers.start()
            watcher = asyncio.create_task(workers.watch())
        grpc_server = GrpcServer(registrar(ArchiveServicer(service, write_token=secret)),
                                 host=settings.host, port=settings.grpc_port,
                                 reflection_enabled=settings.reflection)
        http = http_server(serving_app(service, write_token=secret, read_token=reader,
                                       max_body_bytes=settings.max_body_bytes))
        await grpc_server.start()
        log.info("archive: gRPC on %s:%d, REST and page on http://%s:%d/ (%d process%s)",
                 settings.host, grpc_server.port, settings.host, sock.getsockname()[1],
                 settings.http_workers, "es" if settings.http_workers > 1 else "")
        quiet_gc()
        if not signals:
            await http.serve(sockets=[sock])
    finally:
        if signals:
            log.info("received %s: stopping", signal.Signals(signals[0]).name)
        if workers is not None:
            workers.stop()
        if watcher is not None:
            watcher.cancel()
        if grpc_server is not None:
            await grpc_server.stop()
        if changes is not None:
            await changes.close()
        if store is not None:
            await store.close()
        if sock is not None:
            sock.close()
        if embedded is not None:
            embedded.stop()
            log.info("stopped the embedded redis-server")


def shared_metrics_dir(settings: ArchiveSettings) -> str | None:
    """With REST workers, every process writes its metrics to one directory, so `/metrics`
    from any of them reports them all (prometheus_client's multiprocess mode). It must be
    set before prometheus_client is imported. Returns the directory to remove at exit."""
    if settings.http_workers <= 1 or os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return None
    path = tempfile.mkdtemp(prefix="paretopo-archive-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    return path


def main(argv: list[str] | None = None) -> None:
    settings = parse_settings(argv)
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    metrics_dir = shared_metrics_dir(settings)
    try:
        run_loop(serve(settings))
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
