"""`python -m services.archive`: serve the archive over gRPC and REST from one process.

    python -m services.archive --grpc-port 50051 --http-port 8080 --redis-url redis://...

Flags override `PARETOPO_ARCHIVE_*` environment variables. Without a Redis URL an embedded
redis-server is started under `--redis-dir` (fine for one machine; use a real Redis with
append-only persistence in production). On SIGTERM or SIGINT every part stops, the embedded
redis-server included; if this process is killed outright, that server exits with it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import Iterator

from services.archive.settings import ArchiveSettings

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


def quiet_gc() -> None:
    """Keep the objects that exist after start-up out of garbage collection.

    A full collection walks every tracked object (≈ 235k here: FastAPI, gRPC, pydantic,
    torch) and took up to 209 ms under read load, the whole p99 of a `GET /front`; frozen
    objects are skipped, so what is left to scan is what requests allocate.
    """
    gc.collect()
    gc.freeze()


async def serve(settings: ArchiveSettings) -> None:
    import uvicorn

    from paretopo.grpc_util import GrpcServer
    from services.archive.grpc import ArchiveServicer, registrar
    from services.archive.http import create_app
    from services.archive.service import ArchiveService
    from services.archive.store import ArchiveStore

    class HttpServer(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            # uvicorn's own handlers re-raise the signal once it has stopped, which kills
            # this process before the embedded Redis and the gRPC server are stopped; the
            # archive installs its own handlers below instead.
            yield

    # Handlers first: a signal that arrives while Redis or gRPC start still stops everything.
    signals: list[int] = []
    http: HttpServer | None = None

    def on_signal(sig: int) -> None:
        signals.append(sig)
        if http is not None:
            http.handle_exit(sig, None)

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)

    embedded = None
    grpc_server = None
    store = None
    try:
        redis_url = settings.redis_url
        if redis_url is None:
            from paretopo.redis_server import EmbeddedRedis

            embedded = EmbeddedRedis(settings.redis_dir, stop_with_parent=True).start()
            redis_url = embedded.url
            log.warning("no Redis URL given: started an embedded redis-server at %s (pid %d, "
                        "data in %s)", redis_url, embedded.pid, settings.redis_dir)
        store = ArchiveStore.from_url(redis_url, namespace=settings.namespace)
        service = ArchiveService(store)
        secret = settings.write_token.get_secret_value() if settings.write_token else None
        reader = settings.read_token.get_secret_value() if settings.read_token else None
        grpc_server = GrpcServer(registrar(ArchiveServicer(service, write_token=secret)),
                                 host=settings.host, port=settings.grpc_port,
                                 reflection_enabled=settings.reflection)
        app = create_app(service, write_token=secret, read_token=reader,
                         max_body_bytes=settings.max_body_bytes)
        http = HttpServer(uvicorn.Config(app, host=settings.host, port=settings.http_port,
                                         log_level="warning", lifespan="off"))
        await grpc_server.start()
        log.info("archive: gRPC on %s:%d, REST and page on http://%s:%d/", settings.host,
                 grpc_server.port, settings.host, settings.http_port)
        quiet_gc()
        if not signals:
            await http.serve()
    finally:
        if signals:
            log.info("received %s: stopping", signal.Signals(signals[0]).name)
        if grpc_server is not None:
            await grpc_server.stop()
        if store is not None:
            await store.close()
        if embedded is not None:
            embedded.stop()
            log.info("stopped the embedded redis-server")


def main(argv: list[str] | None = None) -> None:
    settings = parse_settings(argv)
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
