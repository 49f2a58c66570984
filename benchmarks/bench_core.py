"""Speed of the ParetoPO core kernels: Pareto ranking, Stage 2 advantages, hypervolume.

Run: ``python benchmarks/bench_core.py [--repeats N]`` (about 20 s on a 2-core VM). Prints a
markdown table of median wall times; every row is timed with one torch thread (the "one
core" figure, target: ranking a 1024 x 16 batch in < 5 ms) and with torch's default thread
count. Rows marked "baseline" are the per-group loops the vectorised kernels replace, timed
in the same run so their ratio is meaningful on a noisy shared machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable

import moocore
import numpy as np
import torch

from paretopo.core.advantages import pareto_rank_advantages
from paretopo.core.hypervolume import hypervolume
from paretopo.core.pareto import pareto_ranks

B, G = 1024, 16
WEIGHTS = {2: (0.6, 0.4), 3: (0.5, 0.3, 0.2)}


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up: first-call allocations and lazy initialisation
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def rollout_rewards(rng: np.random.Generator, m: int) -> torch.Tensor:
    """(B, G, M) rewards shaped like training: r_acc in {0, 1}, r_tool on a few levels."""
    acc = rng.integers(0, 2, size=(B, G, 1))
    tool = np.sin(np.pi / 2 * rng.integers(0, 6, size=(B, G, m - 1)) / 5)
    return torch.from_numpy(np.concatenate([acc, tool], axis=-1)).to(torch.float32)


def front_points(rng: np.random.Generator, n: int, m: int) -> np.ndarray:
    """n points near the unit sphere in the positive orthant: mostly mutually non-dominated."""
    x = np.abs(rng.normal(size=(n, m)))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x * rng.uniform(0.98, 1.0, size=(n, 1))


def moocore_rank_loop(points: torch.Tensor) -> np.ndarray:
    arr = points.numpy().astype(np.float64)
    return np.stack([moocore.pareto_rank(group, maximise=True) for group in arr])


def cases(repeats: int) -> list[tuple[str, str, Callable[[], object]]]:
    rng = np.random.default_rng(0)
    out = []
    for m in (2, 3):
        discrete = rollout_rewards(rng, m)
        continuous = torch.rand(B, G, m, generator=torch.Generator().manual_seed(m))
        out += [
            (f"pareto_ranks, rollout-like rewards, M={m}", f"{B}x{G}",
             lambda r=discrete: pareto_ranks(r)),
            (f"pareto_ranks, uniform random, M={m}", f"{B}x{G}",
             lambda r=continuous: pareto_ranks(r)),
            (f"pareto_rank_advantages, rollout-like, M={m}", f"{B}x{G}",
             lambda r=discrete, w=WEIGHTS[m]: pareto_rank_advantages(r, w)),
            (f"pareto_rank_advantages, uniform random, M={m}", f"{B}x{G}",
             lambda r=continuous, w=WEIGHTS[m]: pareto_rank_advantages(r, w)),
            (f"baseline: moocore.pareto_rank per group, M={m}", f"{B}x{G}",
             lambda r=continuous: moocore_rank_loop(r)),
        ]
    for m in (2, 3):
        pts, ref = front_points(rng, 10_000, m), np.zeros(m)
        out.append((f"hypervolume, M={m}", "10^4 points", lambda p=pts, z=ref: hypervolume(p, z)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30, help="timed calls per row")
    args = parser.parse_args()
    default_threads = torch.get_num_threads()
    print(f"# bench_core: {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, torch {torch.__version__}, numpy {np.__version__}, "
          f"moocore {moocore.__version__}; median of {args.repeats} calls\n")
    print(f"| kernel | size | 1 thread (ms) | {default_threads} threads (ms) |")
    print("|---|---|---:|---:|")
    for name, size, fn in cases(args.repeats):
        torch.set_num_threads(1)
        one = median_ms(fn, args.repeats)
        torch.set_num_threads(default_threads)
        many = median_ms(fn, args.repeats)
        print(f"| {name} | {size} | {one:.2f} | {many:.2f} |", flush=True)


if __name__ == "__main__":
    main()
