"""`python -m services.rollout`: a rollout worker (jobs from Redis, groups back to Redis).

    PARETOPO_ROLLOUT_REDIS_URL=redis://127.0.0.1:6379/0 \\
    PARETOPO_ROLLOUT_EXECUTOR=127.0.0.1:50071 PARETOPO_ROLLOUT_SEARCH=127.0.0.1:50061 \\
        python -m services.rollout --max-concurrent-jobs 4

Every flag overrides its `PARETOPO_ROLLOUT_*` variable. The policy comes from the run each job
names (`policy_store.current`), so no model path is configured here. SIGTERM/SIGINT: stop
taking jobs, finish those in flight within `--shutdown-grace-s`, release the rest, exit 0.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from pydantic import ValidationError

from paretopo.errors import describe_validation_error
from services.rollout.settings import RolloutSettings

log = logging.getLogger("services.rollout")


def parse_settings(argv: list[str] | None = None) -> tuple[RolloutSettings, bool]:
    parser = argparse.ArgumentParser(prog="python -m services.rollout",
                                     description="Rollout worker.")
    for name, field in RolloutSettings.model_fields.items():
        parser.add_argument("--" + name.replace("_", "-"), dest=name, default=None,
                            help=field.description)
    parser.add_argument("--dry-run", action="store_true",
                        help="print the resolved configuration and exit")
    args = vars(parser.parse_args(argv))
    dry_run = args.pop("dry_run")
    return RolloutSettings(**{k: v for k, v in args.items() if v is not None}), dry_run


async def serve(settings: RolloutSettings) -> int:
    from redis.asyncio import Redis
    from redis.exceptions import RedisError

    from services.rollout.engine_factory import build_engine
    from services.rollout.http import ProbeServer
    from services.rollout.tools import ToolClients
    from services.rollout.worker import RolloutWorker

    redis = Redis.from_url(settings.redis_url, socket_connect_timeout=5, health_check_interval=30)
    try:
        await redis.ping()
    except (RedisError, OSError) as err:
        print(f"error: cannot reach Redis at {settings.redis_url}: {err}", file=sys.stderr)
        return 1
    tools = ToolClients(settings.executor, settings.search, timeout_s=settings.tool_timeout_s,
                        search_top_k=settings.search_top_k)
    worker = RolloutWorker(redis, settings, tools,
                           lambda path, v: build_engine(settings.engine_settings(path, v)))
    probes = None
    if settings.http_port:
        probes = ProbeServer(worker.metrics.registry, worker.ready, host=settings.http_host,
                             port=settings.http_port)
        await probes.start()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    log.info("rollout worker %s: redis %s, engine %s on %s, executor %s, search %s, http :%s",
             settings.worker_name, settings.redis_url, settings.engine, settings.device,
             settings.executor or "-", settings.search or "-", settings.http_port or "off")
    try:
        await worker.run(stopping)
    finally:
        if probes is not None:
            await probes.stop()
        await tools.close()
        await redis.aclose()
    log.info("rollout worker %s stopped", settings.worker_name)
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        settings, dry_run = parse_settings(argv)
    except ValidationError as err:
        print(f"error: bad rollout configuration: {describe_validation_error(err)}",
              file=sys.stderr)
        return 2
    if dry_run:
        print(settings.model_dump_json(indent=2))
        return 0
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return asyncio.run(serve(settings))
    except OSError as err:  # e.g. the HTTP port is taken
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
