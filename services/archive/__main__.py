"""`python -m services.archive`: serve the archive over gRPC and REST from one process.

    python -m services.archive --grpc-port 50051 --http-port 8080 --redis-url redis://...

Flags override `PARETOPO_ARCHIVE_*` environment variables. Without a Redis URL an embedded
redis-server is started under `--redis-dir` (fine for one machine; use a real Redis with
append-only persistence in production).
"""

from __future__ import annotations

import argparse
import asyncio
import logging

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


async def serve(settings: ArchiveSettings) -> None:
    import uvicorn

    from paretopo.grpc_util import GrpcServer
    from services.archive.grpc import ArchiveServicer, registrar
    from services.archive.http import create_app
    from services.archive.service import ArchiveService
    from services.archive.store import ArchiveStore

    embedded = None
    redis_url = settings.redis_url
    if redis_url is None:
        from paretopo.redis_server import EmbeddedRedis

        embedded = EmbeddedRedis(settings.redis_dir).start()
        redis_url = embedded.url
        log.warning("no Redis URL given: started an embedded redis-server at %s (data in %s)",
                    redis_url, settings.redis_dir)
    store = ArchiveStore.from_url(redis_url, namespace=settings.namespace)
    service = ArchiveService(store)
    secret = settings.write_token.get_secret_value() if settings.write_token else None
    reader = settings.read_token.get_secret_value() if settings.read_token else None
    grpc_server = GrpcServer(registrar(ArchiveServicer(service, write_token=secret)),
                             host=settings.host, port=settings.grpc_port,
                             reflection_enabled=settings.reflection)
    app = create_app(service, write_token=secret, read_token=reader)
    http = uvicorn.Server(uvicorn.Config(app, host=settings.host, port=settings.http_port,
                                         log_level="warning", lifespan="off"))
    # uvicorn installs its own SIGTERM/SIGINT handlers; the gRPC server stops when it exits.
    await grpc_server.start()
    log.info("archive: gRPC on %s:%d, REST and page on http://%s:%d/", settings.host,
             grpc_server.port, settings.host, settings.http_port)
    try:
        await http.serve()
    finally:
        await grpc_server.stop()
        await store.close()
        if embedded is not None:
            embedded.stop()


def main(argv: list[str] | None = None) -> None:
    settings = parse_settings(argv)
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
