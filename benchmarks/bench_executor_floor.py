"""How far a sequential executor call is above what it cannot cost less than.

    .venv/bin/python benchmarks/bench_executor_floor.py [--workers 4] [--rounds 8]
        [--calls 200] [--out FILE]

`bench_executor.py` compares the executor with a fresh `python -c`; this puts beside both,
in the same rounds, the two parts of an executor call that no change to the executor's own
code can remove:

- **executor**: sequential `print(1+1)` through `python -m services.tools.executor` over
  gRPC, as `bench_executor.py` calls it;
- **transport**: a bare `grpc.aio` unary echo (a server process that returns the request, a
  client in this process), one call at a time;
- **fork**: in the sandbox's interpreter with the executor's preloads (`-I -S`, the default
  `--preload` list, `gc.freeze()`, as the zygote starts), `fork()` of a child that `_exit`s
  at once, and `waitpid`: the page tables copied and torn down per call, before the child
  has run a line of Python or written to a page;
- **fresh**: `sys.executable -c "print(1+1)"` as a subprocess, the baseline of the 10× goal.

One block of each per round, the order rotated; each block's ratio is to the fresh
interpreter of its own round (the machines this runs on change speed within a minute). CPU
per call is the whole machine's, from `/proc/stat`, so the kernel's work for the fork and
gRPC's threads count. The **ceiling** is what an executor whose call were one transport round
trip and one fork, nothing else, would reach: the two latencies added, and no more calls per
second than the CPUs divided by their CPU per call.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
from bench_executor import (
    REPO,
    TRIVIAL,
    executor_call,
    fresh_interpreter,
    running_executor,
)

from paretopo.netutil import free_port
from paretopo.process import ManagedProcess
from services.tools.executor.__main__ import ExecutorSettings
from services.tools.executor.client import ExecutorClient
from services.tools.executor.sandbox import SANDBOX_ENV, python_paths

TICKS = os.sysconf("SC_CLK_TCK")
ECHO_METHOD = "/floor.Echo/Echo"
REQUEST = json.dumps({"code": TRIVIAL, "limits": {}}).encode()

# Run by the sandbox's interpreter with -I -S: preload, freeze, then fork + _exit on request.
FORK_PROBE = """
import gc, json, os, sys
args = json.loads(sys.argv[1])
sys.path.extend(args["paths"])
for name in args["preload"]:
    __import__(name)
gc.freeze()
for _ in range(args["warmup"]):
    os.waitpid(os.fork() or os._exit(0), 0)
print("ready", flush=True)
for line in sys.stdin:
    for _ in range(int(line)):
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
    print("done", flush=True)
"""


def machine_cpu_s() -> float:
    """CPU seconds this machine's CPUs spent busy: user, nice, system, irq and softirq (not
    idle or iowait, nor steal: time the hypervisor gave to another guest)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(fields[i] for i in (0, 1, 2, 5, 6)) / TICKS


async def serve_echo(port: int) -> None:
    async def echo(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return request

    handler = grpc.method_handlers_generic_handler(
        "floor.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(echo)})
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


class ForkProbe:
    """The sandbox's interpreter with the executor's preloads, forking on request."""

    def __init__(self) -> None:
        python, site_dirs = python_paths()
        preload = [m for m in ExecutorSettings().preload.split(",") if m]
        args = json.dumps({"paths": site_dirs, "preload": preload, "warmup": 50})
        self.proc = subprocess.Popen([python, "-I", "-S", "-c", FORK_PROBE, args],
                                     env=dict(SANDBOX_ENV),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the fork probe did not start")

    def run(self, n: int) -> None:
        """`n` forks; returns when the probe says they are done."""
        self.proc.stdin.write(f"{n}\n")
        self.proc.stdin.flush()
        self.proc.stdout.readline()

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


async def timed(block, n: int) -> dict:
    """calls/s and the machine's CPU ms per call of `n` calls of `block`."""
    cpu0, start = machine_cpu_s(), time.perf_counter()
    await block(n)
    wall, cpu = time.perf_counter() - start, machine_cpu_s() - cpu0
    return {"per_s": n / wall, "cpu_ms": 1000 * cpu / n}


async def measure(target: str, rounds: int, calls: int) -> dict[str, list[dict]]:
    """Interleaved blocks of the executor (at `target`), the transport, the fork and a fresh
    interpreter, one of each per round, the order rotated."""
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        server = ManagedProcess("floor-echo", [sys.executable, __file__, "--serve-echo",
                                               str(port)],
                                log_path=Path(tmp) / "echo.log", cwd=str(REPO),
                                stop_with_parent=True).start()
        probe = ForkProbe()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel, \
                    ExecutorClient(target) as client:
                await asyncio.wait_for(channel.channel_ready(), timeout=60)
                blocks = block_runners(channel.unary_unary(ECHO_METHOD), client, probe)
                sizes = {"executor": calls, "transport": calls, "fork": calls,
                         "fresh": max(5, calls // 10)}
                for name in ("executor", "transport"):
                    await blocks[name](50)  # warm the channels and every worker
                results: dict[str, list[dict]] = {name: [] for name in blocks}
                names = list(blocks)
                for r in range(rounds):
                    for name in names[r % 4:] + names[:r % 4]:
                        results[name].append(await timed(blocks[name], sizes[name]))
                return results
        finally:
            probe.close()
            server.stop()


def block_runners(echo, client: ExecutorClient, probe: ForkProbe) -> dict:
    """name -> async function running n sequential calls of that kind."""
    execute, fresh_call = executor_call(client, TRIVIAL), fresh_interpreter(TRIVIAL)

    async def executor(n: int) -> None:
        for _ in range(n):
            await execute()

    async def transport(n: int) -> None:
        for _ in range(n):
            await echo(REQUEST, timeout=10)

    async def fork(n: int) -> None:
        await asyncio.to_thread(probe.run, n)

    async def fresh(n: int) -> None:
        for _ in range(n):
            await fresh_call()

    return {"executor": executor, "transport": transport, "fork": fork, "fresh": fresh}


def ceiling(transport: dict, fork: dict) -> float:
    """Calls/s of an executor whose call were one transport round trip and one fork, nothing
    else: sequentially the two latencies add up, and the stack's CPUs bound it too."""
    serial = 1 / (1 / transport["per_s"] + 1 / fork["per_s"])
    by_cpu = (os.cpu_count() or 1) * 1000 / (transport["cpu_ms"] + fork["cpu_ms"])
    return min(serial, by_cpu)


def summarise(results: dict[str, list[dict]]) -> tuple[str, dict]:
    """A Markdown table of the medians, each with its ratio to the fresh interpreter of the
    same round (median and range), and the ceiling's ratio likewise."""
    fresh = [r["per_s"] for r in results["fresh"]]
    ratios = {name: [r["per_s"] / f for r, f in zip(rows, fresh, strict=True)]
              for name, rows in results.items()}
    ratios["ceiling"] = [ceiling(t, k) / f for t, k, f in
                         zip(results["transport"], results["fork"], fresh, strict=True)]
    med = {name: {k: statistics.median(r[k] for r in rows) for k in ("per_s", "cpu_ms")}
           for name, rows in results.items()}
    lines = ["| sequential print(1+1) | calls/s | machine CPU ms per call | × fresh "
             "(rounds) |", "|---|---:|---:|---:|"]
    for name in ("executor", "transport", "fork", "fresh", "ceiling"):
        r = ratios[name]
        rate = med[name]["per_s"] if name in med else statistics.median(
            x * f for x, f in zip(r, fresh, strict=True))
        cpu = f"{med[name]['cpu_ms']:.2f}" if name in med else "–"
        lines.append(f"| {name} | {rate:.1f} | {cpu} | {statistics.median(r):.1f} "
                     f"({min(r):.1f}–{max(r):.1f}) |")
    above = med["executor"]["cpu_ms"] - med["transport"]["cpu_ms"] - med["fork"]["cpu_ms"]
    lines += ["", f"- the executor's CPU per call above transport + fork: {above:.2f} ms "
              f"(medians; {len(fresh)} rounds)"]
    return "\n".join(lines), {name: statistics.median(r) for name, r in ratios.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--calls", type=int, default=200,
                        help="executor, transport and fork calls per block (fresh: a tenth)")
    parser.add_argument("--out", type=Path, help="also write the Markdown table here")
    parser.add_argument("--serve-echo", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_echo:
        asyncio.run(serve_echo(args.serve_echo))
        return
    if args.rounds < 1 or args.calls < 10:
        parser.error("--rounds must be >= 1 and --calls >= 10")
    with running_executor(args.workers) as target:
        results = asyncio.run(measure(target, args.rounds, args.calls))
    table, summary = summarise(results)
    print(table)
    print(json.dumps({"median_ratio_to_fresh": summary}))
    if args.out:
        args.out.write_text(table + "\n")


if __name__ == "__main__":
    main()
