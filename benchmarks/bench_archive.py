"""Archive load benchmark: REST front reads (locust) and batched n* updates (gRPC).

    python benchmarks/bench_archive.py [--seconds 15] [--users 32] [--grpc-clients 8]
        [--http-workers 2] [--compare-with DIR] [--rounds 1]

Starts its own Redis and archive service on free ports, seeds a run with a realistic front,
then drives load from this machine; prints throughput and p50/p99 latency.

`--compare-with DIR` runs the same load, in the same run, against the archive of another
source tree (e.g. an older commit exported with `git archive <commit> paretopo services |
tar -x -C DIR`), so that a before/after comparison shares the machine's conditions;
`--rounds N` alternates the two N times.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from paretopo.netutil import free_port
from paretopo.process import ManagedProcess
from paretopo.redis_server import EmbeddedRedis
from paretopo.v1 import archive_pb2
from services.archive.client import ArchiveClient

TOKEN = "bench-token"
ROOT = Path(__file__).resolve().parents[1]


def start(tmp: Path, *, source: Path | None = None, http_workers: int = 1,
          ) -> tuple[EmbeddedRedis, ManagedProcess, int, int]:
    """Redis and an archive; `source`: run the archive of that source tree instead."""
    redis = EmbeddedRedis(tmp / "redis").start()
    grpc_port, http_port = free_port(), free_port()
    args = ["--grpc-port", str(grpc_port), "--http-port", str(http_port), "--redis-url",
            redis.url, "--write-token", TOKEN, "--log-level", "warning"]
    if http_workers > 1:
        args += ["--http-workers", str(http_workers)]
    env = {"PYTHONPATH": str(source)} if source is not None else None
    proc = ManagedProcess.python_module(
        "archive", "services.archive", *args, log_path=tmp / "archive.log", env=env,
        cwd=str(source) if source is not None else None).start()
    url = f"http://127.0.0.1:{http_port}/readyz"
    proc.wait_until(lambda: httpx.get(url, timeout=1).status_code == 200, timeout=60)
    return redis, proc, grpc_port, http_port


async def seed(target: str) -> None:
    async with ArchiveClient(target, token=TOKEN) as client:
        await client.create_run(archive_pb2.RunConfig(run_id="bench"))
        rng = random.Random(0)
        for step in range(200):
            await client.report_outcome("bench", step, [rng.random(), rng.random()])
        await client.update_optimal_calls("bench", [("q1", [2])])


def rest_load(http_port: int, seconds: int, users: int, tmp: Path) -> dict[str, float]:
    prefix = tmp / "locust"
    subprocess.run([sys.executable, "-m", "locust", "-f", str(ROOT / "benchmarks" /
                    "archive_locustfile.py"), "--headless", "-u", str(users), "-r", str(users),
                    "-t", f"{seconds}s", "--host", f"http://127.0.0.1:{http_port}",
                    "--csv", str(prefix), "--only-summary"],
                   check=True, capture_output=True, env={**os.environ, "ARCHIVE_RUN": "bench"})
    with open(f"{prefix}_stats.csv") as f:
        rows = {r["Name"]: r for r in csv.DictReader(f)}
    front = rows["front"]
    total = rows["Aggregated"]
    return {"front_rps": float(front["Requests/s"]), "total_rps": float(total["Requests/s"]),
            "front_p50_ms": float(front["50%"]), "front_p99_ms": float(front["99%"]),
            "failures": float(total["Failure Count"])}


async def grpc_load(target: str, seconds: int, clients: int, batch: int) -> dict[str, float]:
    latencies: list[float] = []
    deadline = time.monotonic() + seconds

    async def worker(seed_: int) -> None:
        rng = random.Random(seed_)
        async with ArchiveClient(target, token=TOKEN) as client:
            while time.monotonic() < deadline:
                prompts = [(f"p{rng.randrange(100_000)}", [rng.randrange(5)])
                           for _ in range(batch)]
                start = time.perf_counter()
                await client.update_optimal_calls("bench", prompts)
                latencies.append(time.perf_counter() - start)

    start = time.monotonic()
    await asyncio.gather(*(worker(i) for i in range(clients)))
    elapsed = time.monotonic() - start
    lat = np.array(latencies) * 1000
    return {"calls_per_s": len(lat) / elapsed, "updates_per_s": len(lat) * batch / elapsed,
            "p50_ms": float(np.percentile(lat, 50)), "p99_ms": float(np.percentile(lat, 99))}


def measure(tmp: Path, args: argparse.Namespace, *, source: Path | None = None,
            http_workers: int = 1) -> tuple[dict[str, float], dict[str, float]]:
    redis, proc, grpc_port, http_port = start(tmp, source=source, http_workers=http_workers)
    try:
        target = f"127.0.0.1:{grpc_port}"
        asyncio.run(seed(target))
        rest = rest_load(http_port, args.seconds, args.users, tmp)
        grpc_stats = asyncio.run(grpc_load(target, args.seconds, args.grpc_clients, args.batch))
    finally:
        proc.stop()
        redis.stop()
    return rest, grpc_stats


def report(name: str, args: argparse.Namespace, rest: dict[str, float],
           grpc_stats: dict[str, float]) -> None:
    print(f"[{name}] REST front reads ({args.users} locust users, {args.seconds}s): "
          f"{rest['front_rps']:.0f} req/s front ({rest['total_rps']:.0f} req/s all reads), "
          f"p50 {rest['front_p50_ms']:.1f} ms, p99 {rest['front_p99_ms']:.1f} ms, "
          f"failures {rest['failures']:.0f}")
    print(f"[{name}] gRPC n* updates (batch {args.batch}, {args.grpc_clients} clients, "
          f"{args.seconds}s): {grpc_stats['updates_per_s']:.0f} updates/s "
          f"({grpc_stats['calls_per_s']:.0f} calls/s), p50 {grpc_stats['p50_ms']:.2f} ms, "
          f"p99 {grpc_stats['p99_ms']:.2f} ms", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--users", type=int, default=32)
    parser.add_argument("--grpc-clients", type=int, default=8)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--http-workers", default="1",
                        help="REST processes of the archive under test (its --http-workers); "
                        "a comma-separated list measures each in turn, e.g. 1,2")
    parser.add_argument("--compare-with", type=Path, default=None, metavar="DIR",
                        help="source tree of another archive to measure in the same run")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    worker_counts = [int(n) for n in args.http_workers.split(",")]
    for round_ in range(args.rounds):
        with tempfile.TemporaryDirectory() as tmp_dir:
            tmp = Path(tmp_dir)
            if args.compare_with is not None:
                rest, grpc_stats = measure(tmp / "other", args,
                                           source=args.compare_with.resolve())
                report(f"round {round_ + 1}, {args.compare_with}", args, rest, grpc_stats)
            for n in worker_counts:
                rest, grpc_stats = measure(tmp / f"this-{n}", args, http_workers=n)
                name = f"this tree, {n} REST process{'es' if n > 1 else ''}"
                report(f"round {round_ + 1}, {name}", args, rest, grpc_stats)


if __name__ == "__main__":
    main()
