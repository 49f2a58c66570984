"""Grader throughput on the real benchmark files (grades per second).

Grades every gold answer of the math benchmarks against itself (a correct answer) and an
off-by-one or wrong-value variant, and every NQ/HotpotQA gold by exact match, three ways:
in-process (`Grader(isolate=False)`), isolated (`Grader()`: a child process with a hard time
limit), and isolated from a worker thread (where only isolation bounds the time).

    .venv/bin/python benchmarks/bench_graders.py [--limit N] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path

from paretopo.datasets import BENCHMARKS, TaskKind, load_benchmark
from paretopo.graders import Grader


def cases(data_dir: Path | None, limit: int | None) -> tuple[list, list]:
    math_cases, qa_cases = [], []
    for name, bench in BENCHMARKS.items():
        for rec in load_benchmark(name, data_dir=data_dir, limit=limit):
            gold = rec.golds[0]
            if bench.kind is TaskKind.MATH:
                math_cases += [(gold, rec.golds, True), (f"{gold}+1", rec.golds, False)]
            else:
                qa_cases += [(gold, rec.golds, True), (f"not {gold}", rec.golds, False)]
    return math_cases, qa_cases


def run(grader: Grader, items: list, kind: str) -> tuple[float, int]:
    start = time.perf_counter()
    agree = sum(grader.check(a, g, kind).correct == want for a, g, want in items)
    return time.perf_counter() - start, agree


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=None, help="records per benchmark")
    ap.add_argument("--data-dir", type=Path, default=None)
    args = ap.parse_args()
    math_cases, qa_cases = cases(args.data_dir, args.limit)
    rows = []
    with Grader(isolate=False) as g:
        rows.append(("math, in-process", len(math_cases), *run(g, math_cases, "math")))
        rows.append(("qa (EM), in-process", len(qa_cases), *run(g, qa_cases, "qa")))
    with Grader() as g:
        g.check("1", ["1"], "math")  # start the child outside the timing
        rows.append(("math, isolated", len(math_cases), *run(g, math_cases, "math")))
        box: list = []
        worker = threading.Thread(target=lambda: box.append(run(g, math_cases, "math")))
        worker.start()
        worker.join()
        rows.append(("math, isolated, worker thread", len(math_cases), *box[0]))
    print(f"{'grader':32} {'grades':>7} {'seconds':>8} {'grades/s':>9} {'agree':>7}")
    for name, n, secs, agree in rows:
        print(f"{name:32} {n:>7} {secs:>8.2f} {n / secs:>9.1f} {agree:>7}")


if __name__ == "__main__":
    main()
