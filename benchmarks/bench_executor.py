"""Executor benchmark: the warm sandboxed pool over real gRPC against a fresh `python -c`.

    .venv/bin/python benchmarks/bench_executor.py [--workers 4] [--calls 200] [--rounds 8]
        [--out FILE]

Starts `python -m services.tools.executor` as a child process (bwrap sandbox when it works
here; the mechanism is printed) and measures, for `print(1+1)` and for a pure-Python loop
calibrated to ~50 ms on this machine:

- sequential: one `Execute` at a time, end-to-end latency at the client (p50/p99) and calls/s;
- batch: `ExecuteBatch` of 64 snippets (the rollout's shape), snippets/s;
- in flight: 64 concurrent `Execute` calls, calls/s and per-call latency.

The baseline starts a fresh interpreter per call (`sys.executable -c CODE` as a subprocess),
sequentially and with as many in flight as the executor has workers. Ratios are within one run.
The sequential `print(1+1)` ratio is also measured interleaved (`--rounds` alternating blocks
of both, one ratio per round, the median and range reported), since a ratio of two blocks run
at different moments moves with the machine's speed at those moments.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from paretopo.netutil import free_port
from paretopo.process import ManagedProcess
from paretopo.v1 import executor_pb2 as pb
from services.tools.executor.client import ExecutorClient

REPO = Path(__file__).resolve().parents[1]
TRIVIAL = "print(1+1)"
LOOP = "s = 0\nfor i in range({n}):\n    s += i * i % 7\nprint(s)"


def calibrate_loop(target_s: float = 0.05) -> str:
    """The LOOP snippet with n chosen so that it runs ~target_s in this interpreter."""
    n = 100_000
    while True:
        start = time.perf_counter()
        exec(LOOP.format(n=n).replace("print(s)", ""), {})
        took = time.perf_counter() - start
        if took > 0.01:
            break
        n *= 4
    return LOOP.format(n=int(n * target_s / took))


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def row(name: str, n: int, wall: float, lat: list[float] | None) -> dict:
    out = {"case": name, "n": n, "per_s": n / wall}
    if lat:
        out |= {"p50_ms": 1000 * pct(lat, 0.5), "p99_ms": 1000 * pct(lat, 0.99)}
    return out


async def timed(call: Callable[[], Awaitable[object]]) -> float:
    start = time.perf_counter()
    await call()
    return time.perf_counter() - start


async def sequential(name: str, n: int, call: Callable[[], Awaitable[object]]) -> dict:
    start = time.perf_counter()
    lat = [await timed(call) for _ in range(n)]
    return row(name, n, time.perf_counter() - start, lat)


async def in_flight(name: str, n: int, width: int,
                    call: Callable[[], Awaitable[object]]) -> dict:
    gate = asyncio.Semaphore(width)

    async def one() -> float:
        async with gate:
            return await timed(call)

    start = time.perf_counter()
    lat = await asyncio.gather(*(one() for _ in range(n)))
    return row(name, n, time.perf_counter() - start, list(lat))


def fresh_interpreter(code: str) -> Callable[[], Awaitable[object]]:
    async def call() -> None:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", code, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        _out, err = await proc.communicate()
        assert proc.returncode == 0, err
    return call


def executor_call(client: ExecutorClient, code: str) -> Callable[[], Awaitable[object]]:
    async def call() -> None:
        result = await client.execute(code)
        assert result.exit_code == 0 and not result.timed_out, result
    return call


def executor_batch(client: ExecutorClient, code: str, size: int
                   ) -> Callable[[], Awaitable[object]]:
    async def call() -> None:
        results = await client.execute_batch([code] * size, timeout_s=300)
        assert all(r.exit_code == 0 for r in results), results[0]
    return call


def wait_serving(target: str) -> bool:
    with grpc.insecure_channel(target) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=1.0)
        except grpc.RpcError:
            return False
    return reply.status == health_pb2.HealthCheckResponse.SERVING


@contextlib.contextmanager
def running_executor(workers: int) -> Iterator[str]:
    """`python -m services.tools.executor` in a child process, serving; yields its target."""
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        server = ManagedProcess.python_module(
            "executor", "services.tools.executor", "--port", str(port),
            "--workers", str(workers), log_path=Path(tmp) / "executor.log",
            cwd=str(REPO), stop_with_parent=True).start()
        try:
            target = f"127.0.0.1:{port}"
            server.wait_until(lambda: wait_serving(target), timeout=120)
            yield target
        finally:
            server.stop()


async def measure(target: str, workers: int, calls: int, loop_code: str,
                  rounds: int) -> tuple[list[dict], list[dict]]:
    """The table's rows, and the interleaved rounds (none when `rounds` is 0)."""
    rows: list[dict] = []
    heavy = max(10, calls // 10)
    async with ExecutorClient(target) as client:
        info = await client.describe()
        mechanism = pb.IsolationMechanism.Name(info.mechanism)
        print(f"mechanism: {mechanism}, degraded: {info.degraded}, workers: {workers}",
              flush=True)
        for _ in range(workers * 2):  # warm every worker and the channel
            await client.execute(TRIVIAL)
        for label, code, n in (("print(1+1)", TRIVIAL, calls), ("50 ms loop", loop_code, heavy)):
            for r in (
                await sequential(f"{label} | executor sequential", n, executor_call(client, code)),
                await sequential(f"{label} | fresh python -c sequential", max(10, n // 5),
                                 fresh_interpreter(code)),
                await in_flight(f"{label} | executor {64} in flight", 4 * 64 if n == calls
                                else 64, 64, executor_call(client, code)),
                await in_flight(f"{label} | fresh python -c {workers} in flight",
                                max(16, n // 4), workers, fresh_interpreter(code)),
            ):
                rows.append(r)
                print(r, flush=True)
            reps = 4 if n == calls else 1
            start = time.perf_counter()
            for _ in range(reps):
                await executor_batch(client, code, 64)()
            r = row(f"{label} | executor ExecuteBatch(64)", 64 * reps,
                    time.perf_counter() - start, None)
            rows.append(r)
            print(r, flush=True)
        paired = await interleaved(client, rounds, max(50, calls // 4))
        for r in paired:
            print({k: round(v, 2) for k, v in r.items()}, flush=True)
    return rows, paired


async def interleaved(client: ExecutorClient, rounds: int, calls: int) -> list[dict]:
    """Sequential `print(1+1)`: the executor and a fresh interpreter in alternating blocks
    (`calls` executor calls, then `calls // 10` fresh ones, or the other way round), one
    ratio per round. The machines this runs on change speed by a fifth within a minute, so
    a ratio of two blocks measured at different moments says as much about the moment as
    about the executor; a ratio within one round does not."""
    call, fresh = executor_call(client, TRIVIAL), fresh_interpreter(TRIVIAL)
    n_fresh = max(5, calls // 10)
    out = []
    for i in range(rounds):
        blocks = [("executor", calls, call), ("fresh", n_fresh, fresh)]
        rates = {}
        for name, n, fn in blocks if i % 2 == 0 else blocks[::-1]:
            start = time.perf_counter()
            for _ in range(n):
                await fn()
            rates[name] = n / (time.perf_counter() - start)
        out.append(rates | {"ratio": rates["executor"] / rates["fresh"]})
    return out


def interleaved_summary(rounds: list[dict]) -> str:
    ratio, execs, fresh = ([r[k] for r in rounds] for k in ("ratio", "executor", "fresh"))
    return (f"print(1+1) sequential, interleaved over {len(rounds)} rounds: median "
            f"{statistics.median(ratio):.1f}x fresh interpreter (rounds {min(ratio):.1f}-"
            f"{max(ratio):.1f}x; executor {min(execs):.0f}-{max(execs):.0f} calls/s, fresh "
            f"{min(fresh):.1f}-{max(fresh):.1f} calls/s)")


def ratios(rows: list[dict]) -> list[str]:
    by = {r["case"]: r for r in rows}
    out = []
    for label in ("print(1+1)", "50 ms loop"):
        seq = by[f"{label} | executor sequential"]["per_s"]
        fresh = by[f"{label} | fresh python -c sequential"]["per_s"]
        conc = max(by[f"{label} | executor 64 in flight"]["per_s"],
                   by[f"{label} | executor ExecuteBatch(64)"]["per_s"])
        fresh_conc = max(v["per_s"] for k, v in by.items()
                         if k.startswith(f"{label} | fresh python -c") and "in flight" in k)
        out.append(f"{label}: sequential {seq / fresh:.1f}x fresh interpreter; "
                   f"concurrent {conc / fresh_conc:.1f}x fresh interpreter")
    return out


def table(rows: list[dict]) -> str:
    lines = ["| case | n | calls/s | p50 ms | p99 ms |", "|---|---:|---:|---:|---:|"]
    for r in rows:
        p50 = f"{r['p50_ms']:.1f}" if "p50_ms" in r else "–"
        p99 = f"{r['p99_ms']:.1f}" if "p99_ms" in r else "–"
        lines.append(f"| {r['case']} | {r['n']} | {r['per_s']:.1f} | {p50} | {p99} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--calls", type=int, default=200, help="sequential print(1+1) calls")
    parser.add_argument("--rounds", type=int, default=8, help="rounds of the interleaved "
                        "sequential comparison (0: skip it)")
    parser.add_argument("--out", type=Path, help="also write the Markdown table here")
    args = parser.parse_args()
    loop_code = calibrate_loop()
    with running_executor(args.workers) as target:
        rows, paired = asyncio.run(measure(target, args.workers, args.calls, loop_code,
                                           args.rounds))
    summary = ([interleaved_summary(paired)] if paired else []) + ratios(rows)
    text = table(rows) + "\n\n" + "\n".join(f"- {line}" for line in summary) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    print("50 ms snippet:", loop_code.replace("\n", "; "))


if __name__ == "__main__":
    main()
