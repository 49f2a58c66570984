"""Entry point: ``python -m services.tools.executor [--port N] [--workers N] ...``.

Configuration comes from the environment (prefix ``PARETOPO_EXECUTOR_``, e.g.
``PARETOPO_EXECUTOR_WORKERS=8``); flags override it. ``--dry-run`` prints the resolved
configuration and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

log = logging.getLogger("services.tools.executor")


class ExecutorSettings(BaseSettings):
    """Executor configuration. Limits: seconds, MiB, bytes, counts."""

    model_config = SettingsConfigDict(env_prefix="PARETOPO_EXECUTOR_")

    host: str = Field("127.0.0.1", description="gRPC bind address")
    port: int = Field(50061, ge=0, le=65535, description="gRPC port (0: any free port)")
    metrics_port: int = Field(0, ge=0, le=65535,
                              description="Prometheus HTTP port; 0 disables it")
    workers: int = Field(default_factory=lambda: max(4, os.cpu_count() or 1), ge=1, le=256,
                         description="warm sandbox workers (concurrent snippets)")
    mechanism: str = Field("auto", pattern="^(auto|bwrap|rlimits)$",
                           description="auto: bwrap, else rlimits with a loud warning")
    bwrap: str | None = Field(None, description="path of the bwrap binary (default: found)")
    seccomp: bool = Field(True, description="install the seccomp filter when libseccomp exists")
    preload: str = Field("math,cmath,fractions,decimal,itertools,functools,collections,re,"
                         "json,random,statistics,string,heapq,bisect,numpy",
                         description="modules imported once in each warm worker")
    uid_base: int = Field(61000, ge=1000, description="first host uid for workers when root")
    tmpfs_mb: int = Field(256, ge=16, description="size of each worker's /tmp and /dev/shm")
    memory_limit: str = Field("auto", pattern="^(auto|cgroup-v2|cgroup-v1|rlimit)$",
                              description="how memory_mb is enforced: auto (a memory cgroup "
                              "per call where possible, else per-process rlimits, loudly)")
    reserved_workers: int = Field(1, ge=0, description="idle workers kept for clients with "
                                  "no call running (fairness against one client's batch)")
    wall_s: float = Field(5.0, gt=0, description="default wall-time limit per snippet, s")
    max_wall_s: float = Field(60.0, gt=0, description="largest wall-time a request may ask, s")
    cpu_s: float = Field(5.0, gt=0, description="default CPU-time limit, s")
    max_cpu_s: float = Field(60.0, gt=0, description="largest CPU-time limit, s")
    memory_mb: int = Field(1024, ge=64, description="default address-space limit, MiB")
    max_memory_mb: int = Field(4096, ge=64, description="largest address-space limit, MiB")
    output_bytes: int = Field(16384, ge=256, description="default stdout kept, bytes")
    max_output_bytes: int = Field(1 << 20, ge=256, description="largest stdout kept, bytes")
    processes: int = Field(32, ge=2, description="default processes+threads per snippet")
    max_processes: int = Field(256, ge=2, description="largest processes+threads per snippet")
    file_bytes: int = Field(16 << 20, ge=0, description="default largest file written, bytes")
    max_file_bytes: int = Field(128 << 20, ge=0, description="largest file limit, bytes")
    max_code_bytes: int = Field(256 * 1024, ge=1, description="largest snippet, bytes")
    max_batch: int = Field(512, ge=1, description="most snippets per ExecuteBatch")
    log_level: str = Field("INFO", description="logging level")


def parse_args(argv: list[str] | None = None) -> tuple[ExecutorSettings, bool]:
    parser = argparse.ArgumentParser(prog="python -m services.tools.executor",
                                     description="Sandboxed Python executor (gRPC)")
    for name, info in ExecutorSettings.model_fields.items():
        kind = {int: int, float: float}.get(info.annotation, str)
        if info.annotation is bool:
            parser.add_argument(f"--{name.replace('_', '-')}", dest=name, default=None,
                                action=argparse.BooleanOptionalAction, help=info.description)
        else:
            parser.add_argument(f"--{name.replace('_', '-')}", dest=name, type=kind,
                                default=None, help=info.description)
    parser.add_argument("--dry-run", action="store_true", help="print the configuration, exit")
    ns = vars(parser.parse_args(argv))
    dry = ns.pop("dry_run")
    return ExecutorSettings(**{k: v for k, v in ns.items() if v is not None}), dry


async def serve(cfg: ExecutorSettings) -> None:
    from prometheus_client import start_http_server

    from paretopo.grpc_util import GrpcServer
    from services.tools.executor.grpc import registrar
    from services.tools.executor.pool import WorkerPool
    from services.tools.executor.sandbox import make_plan
    from services.tools.executor.service import ExecutorService, Limits, Metrics

    plan = make_plan(mechanism=cfg.mechanism, bwrap=cfg.bwrap, seccomp=cfg.seccomp,
                     preload=[m for m in cfg.preload.split(",") if m],
                     uid_base=cfg.uid_base, tmpfs_mb=cfg.tmpfs_mb)
    pool = WorkerPool(plan, cfg.workers, reserved=cfg.reserved_workers,
                      memory=cfg.memory_limit)
    await pool.start()
    defaults = Limits(cfg.wall_s, cfg.cpu_s, cfg.memory_mb, cfg.output_bytes, cfg.processes,
                      cfg.file_bytes)
    maxima = Limits(cfg.max_wall_s, cfg.max_cpu_s, cfg.max_memory_mb, cfg.max_output_bytes,
                    cfg.max_processes, cfg.max_file_bytes)
    metrics = Metrics()
    service = ExecutorService(pool, defaults=defaults, maxima=maxima, metrics=metrics,
                              max_code_bytes=cfg.max_code_bytes, max_batch=cfg.max_batch)
    service.publish_memory_mode()
    if cfg.metrics_port:
        start_http_server(cfg.metrics_port, addr=cfg.host, registry=metrics.registry)
        log.info("metrics on http://%s:%d/metrics", cfg.host, cfg.metrics_port)
    server = GrpcServer(registrar(service), host=cfg.host, port=cfg.port)
    log.info("executor ready: %d workers, mechanism %s%s, memory limit %s%s", cfg.workers,
             plan.mechanism, " (DEGRADED)" if plan.degraded else "", pool.cgroups.mode,
             "" if pool.cgroups.whole_call else " (DEGRADED: per process)")
    await server.serve_until_signal(on_stop=pool.close)


def main(argv: list[str] | None = None) -> None:
    cfg, dry = parse_args(argv)
    if dry:
        print(json.dumps(cfg.model_dump(), indent=2))
        return
    logging.basicConfig(level=cfg.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve(cfg))


if __name__ == "__main__":
    main()
