"""Rollout benchmark: engine tokens/s against `transformers.generate`, and trajectories/s
with tool calls for 1 vs N worker processes.

    .venv/bin/python benchmarks/bench_rollout.py [--batch 32] [--new-tokens 64] [--workers 4]
        [--parts engine,sampler,workers] [--sampler-vocab 151936]

1. Engine: the testbed policy (default `ModelConfig`, random weights) decodes the same batch of
   prompts with our `TorchEngine` and with `model.generate` (both KV-cached, no stop strings,
   EOS suppressed by forcing min length so both generate exactly `--new-tokens` per row);
   greedy and sampled (T=1, top-p 0.95; unseeded and seeded). Reported: generated tokens/s
   (wall and per CPU-second of this process) and the ratio. To compare with an older commit:
   `git archive <commit> | tar -x -C /tmp/before` and run this script with
   `PYTHONPATH=/tmp/before` (the engine is imported from there; the header says which).
2. Sampler: `sample_next` (per-row streams, inverse CDF in float64) against the plain
   `torch.multinomial` draw from the same processed distribution, at a Qwen2.5-sized vocabulary
   (the testbed's char vocabulary hides the per-token cost): microseconds per decode step.
3. Workers: real Redis, a real executor server, worker processes (`python -m services.rollout`)
   with the same random policy; jobs whose prompt ends with an opened `<python>` call, sampled
   greedily with a per-turn budget, so every trajectory is cut or calls a tool depending on the
   policy. The policy is *not* SFT'd (random weights): tool calls per trajectory are reported.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import torch

from paretopo.hf_policy import save_policy
from paretopo.jobs import SamplingParams
from paretopo.testbed.model import build_model
from paretopo.testbed.prompts import render_prompt
from paretopo.testbed.tokenizer import build_tokenizer
from services.rollout.settings import EngineSettings
from services.rollout.torch_engine import TorchEngine


def engine_bench(policy: Path, batch: int, new_tokens: int, repeats: int) -> list[str]:
    engine = TorchEngine(EngineSettings(model_path=str(policy), seed=0))
    tok, model = engine.tokenizer, engine.model
    texts = [render_prompt("calc", f"What is {i} * {i + 7} + {3 * i}?") for i in range(batch)]
    prompts = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
    enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    lines = []
    for label, params in (("greedy", SamplingParams(temperature=0.0)),
                          ("sampled T=1 top-p 0.95", SamplingParams(temperature=1.0, top_p=0.95)),
                          ("sampled, seeded", SamplingParams(temperature=1.0, top_p=0.95,
                                                             seed=3))):
        ours, ours_cpu, hf = [], [], []
        for _ in range(repeats):
            start, cpu = time.perf_counter(), time.process_time()
            gens = engine.generate_sync(prompts, params, [], new_tokens)
            n = sum(len(g.token_ids) for g in gens)
            ours.append(n / (time.perf_counter() - start))
            # CPU seconds of this process: steadier than wall time on a shared machine.
            ours_cpu.append(n / (time.process_time() - cpu))
            sample = params.temperature > 0
            start = time.perf_counter()
            with torch.inference_mode():
                out = model.generate(**enc, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                                     do_sample=sample, top_p=0.95 if sample else None,
                                     temperature=1.0 if sample else None, top_k=None,
                                     pad_token_id=tok.pad_token_id)
            n = (out.shape[1] - enc["input_ids"].shape[1]) * out.shape[0]
            hf.append(n / (time.perf_counter() - start))
        o, h = statistics.median(ours), statistics.median(hf)
        c = statistics.median(ours_cpu)
        lines.append(f"| {label} | {batch} | {new_tokens} | {o:,.0f} | {c:,.0f} | {h:,.0f} | "
                     f"{o / h:.2f} |")
    return lines


def _time_sampler(logits: torch.Tensor, t: float, k: int, p: float, repeats: int
                  ) -> tuple[float, float]:
    """CPU µs per call of `sample_next` and of the old shared-generator multinomial draw
    (process time, interleaved: steadier than wall time on a shared machine)."""
    import random

    from services.rollout.sampling import RowStreams, _truncate, derive_seed, sample_next

    batch = logits.shape[0]
    temp, top_k, top_p = (torch.full((batch,), t), torch.full((batch,), k),
                          torch.full((batch,), p))
    streams = RowStreams([derive_seed(7, i) for i in range(batch)], random.Random(0))
    gen = torch.Generator().manual_seed(0)

    def ours() -> None:
        sample_next(logits, temp, top_k, top_p, streams.next())

    def multinomial() -> None:  # the draw before per-row streams (one shared generator)
        scaled = logits / t
        if k > 0 or p < 1:
            scaled = _truncate(scaled, top_k, top_p)
        logp = torch.log_softmax(scaled, -1)
        logp.gather(1, torch.multinomial(logp.exp(), 1, generator=gen))

    times = {}
    for name, fn in (("ours", ours), ("multinomial", multinomial)) * 2:  # interleaved, warm
        fn()
        start = time.process_time()
        for _ in range(repeats):
            fn()
        times[name] = (time.process_time() - start) / repeats * 1e6
    return times["ours"], times["multinomial"]


def sampler_bench(batch: int, vocab: int, repeats: int = 30) -> list[str]:
    logits = torch.randn(batch, vocab, generator=torch.Generator().manual_seed(0)) * 3
    lines = []
    for label, t, k, p in (("T=1", 1.0, 0, 1.0), ("T=1 top-p 0.95", 1.0, 0, 0.95)):
        ours, multinomial = _time_sampler(logits, t, k, p, repeats)
        lines.append(f"| {label} | {batch} | {vocab:,} | {ours:,.0f} | {multinomial:,.0f} | "
                     f"{ours / multinomial:.2f} |")
    return lines


def workers_bench(policy: Path, n_workers_list: list[int], jobs: int, group: int) -> list[str]:
    import sys

    from redis.asyncio import Redis

    from paretopo.jobs import RolloutJob, encode
    from paretopo.policy_store import PolicyPointer, point_to
    from paretopo.process import ManagedProcess
    from paretopo.redis_server import EmbeddedRedis
    from paretopo.results import read_groups
    from paretopo.streams import RolloutKeys

    repo = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(repo / "tests" / "integration" / "executor"))
    from conftest import start_executor, stop  # the executor tests' launcher

    tmp = Path(tempfile.mkdtemp(prefix="bench-rollout-"))
    executor = start_executor(tmp, workers=2)
    lines = []
    try:
        for n_workers in n_workers_list:
            redis_server = EmbeddedRedis(tmp / f"redis-{n_workers}").start()
            keys = RolloutKeys()
            procs = [ManagedProcess.python_module(
                f"w{i}", "services.rollout", "--redis-url", redis_server.url, "--http-port", "0",
                "--executor", executor.target, "--threads", "1", "--worker-name", f"w{i}",
                "--max-concurrent-jobs", "2", log_path=tmp / f"w{n_workers}-{i}.log",
                cwd=str(repo)) for i in range(n_workers)]

            async def run(redis_url: str, keys: RolloutKeys, procs: list[ManagedProcess],
                          n_workers: int) -> tuple[float, float, float]:
                redis = Redis.from_url(redis_url)
                await point_to(redis, keys, "bench", PolicyPointer(1, str(policy)))
                warm = RolloutJob(job_id="warm", run_id="bench", prompt_id="w", prompt="x",
                                  n_samples=1, sampling=SamplingParams(max_new_tokens=2))
                for p in procs:
                    p.start()
                for i in range(n_workers):  # every worker loads the policy before timing
                    await redis.xadd(keys.jobs, {"data": encode(warm.model_copy(
                        update={"job_id": f"warm{i}"}))})
                got = 0
                while got < n_workers:
                    got += len(await read_groups(redis, keys, "bench", "b", 10, 1000))
                prompt = render_prompt("calc", "What is 12 * 34?") + "<python>print(12*34)"
                sampling = SamplingParams(temperature=1.0, max_new_tokens=48,
                                          max_completion_tokens=160, max_tool_calls=2)
                start = time.perf_counter()
                for i in range(jobs):
                    job = RolloutJob(job_id=f"j{i}", run_id="bench", prompt_id=f"p{i}",
                                     prompt=prompt, n_samples=group, sampling=sampling)
                    await redis.xadd(keys.jobs, {"data": encode(job)})
                groups = []
                while len(groups) < jobs:
                    groups += await read_groups(redis, keys, "bench", "b", 10, 1000)
                elapsed = time.perf_counter() - start
                trajs = [t for g in groups for t in g.trajectories]
                await redis.aclose()
                return (len(trajs) / elapsed, statistics.fmean(t.n_tool_calls for t in trajs),
                        elapsed)

            try:
                rate, calls, elapsed = asyncio.run(run(redis_server.url, keys, procs, n_workers))
            finally:
                for p in procs:
                    p.stop()
                redis_server.kill()
            lines.append(f"| {n_workers} | {jobs} x {group} | {elapsed:.1f} | {rate:.1f} | "
                         f"{calls:.2f} |")
    finally:
        stop(executor.proc)
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--new-tokens", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--jobs", type=int, default=16)
    p.add_argument("--group", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--parts", default="engine,sampler,workers",
                   help="comma-separated: engine, sampler, workers")
    p.add_argument("--sampler-vocab", type=int, default=151936)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    parts = set(args.parts.split(","))
    import services.rollout.torch_engine as engine_module

    # An older tree put first on PYTHONPATH is measured by this same script (before/after).
    print(f"engine source: {Path(engine_module.__file__).resolve().parents[2]}\n")
    tok = build_tokenizer()
    policy = save_policy(build_model(tok), tok, Path(tempfile.mkdtemp()) / "policy")
    if "engine" in parts:
        print("| sampling | batch | new tokens/row | TorchEngine tok/s | TorchEngine tok/CPU-s | "
              "HF generate tok/s | ratio (wall) |")
        print("|---|---|---|---|---|---|---|")
        print("\n".join(engine_bench(policy, args.batch, args.new_tokens, args.repeats)))
        print()
    if "sampler" in parts:
        print("| sampler | batch | vocab | sample_next CPU µs/step | multinomial CPU µs/step | "
              "ratio |")
        print("|---|---|---|---|---|---|")
        print("\n".join(sampler_bench(args.batch, args.sampler_vocab)))
        print()
    if "workers" in parts:
        print("| worker processes | jobs x G | seconds | trajectories/s | tool calls/traj |")
        print("|---|---|---|---|---|")
        print("\n".join(workers_bench(policy, [1, args.workers], args.jobs, args.group)))


if __name__ == "__main__":
    main()
