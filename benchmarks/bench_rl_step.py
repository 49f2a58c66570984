"""The RL step against its floor: the compute of the step's own work, measured in one run.

    .venv/bin/python benchmarks/bench_rl_step.py --model runs/warm/calc --steps 16

Trains the shipped calc configuration (`configs/runs/calc_paretopo.yaml`: G = 8, 8 prompts
per step, staleness 1, one torch thread for the learner and one for the worker) through the
real services, without validation, and records every step's wall time. Then, with the
services idle, it replays the work of the same steps on its own:

- learner floor: log π_old recomputation + the policy update + the post-update KL of each
  step's own trajectories (the groups it trained on, read back from the results stream), on
  a fresh copy of the policy with one thread; and again with every row run whole
  (`backend.share_prefixes` off), to show what running each distinct prompt once saves;
- rollout floor: the agent loop generating each step's prompts (G samples, the same
  sampling and tools) on an engine in this process with one thread.

With staleness 1 the learner and the worker run on separate cores at the same time, so the
floor of a step is max(learner, rollout); their sum is the floor of a synchronous loop.
Reports actual / floor and steps per minute.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from statistics import fmean, median

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests/integration/learner"))

import torch  # noqa: E402
from learner_stack import NAMESPACE, start_stack  # noqa: E402

from paretopo.agent_formats import tool_format  # noqa: E402
from paretopo.jobs import GroupResult  # noqa: E402
from services.learner.backends import build_backend, policy_update, recompute_logprobs  # noqa: E402
from services.learner.batch import collate  # noqa: E402
from services.learner.config import BackendConfig, RunConfig, load_run_config  # noqa: E402
from services.learner.loop import Learner  # noqa: E402


class RecordingLearner(Learner):
    """The learner, keeping each step's groups: all of them (what the workers generated) and
    those it trained on (what the update computed over)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.scored: list[list[GroupResult]] = []
        self.trained: list[list[GroupResult]] = []

    async def _score(self, groups):
        self.scored.append(list(groups))
        self.trained.append([])  # until the step trains on some of them
        return await super()._score(groups)

    def _update(self, groups, adv):
        self.trained[-1] = list(groups)
        return super()._update(groups, adv)


async def run(config: RunConfig, seen: list) -> RecordingLearner:
    learner = RecordingLearner(config, on_step=seen.append)
    try:
        await learner.run()
    finally:
        await learner.close()
    return learner


def learner_floor(config: RunConfig, steps: list[list[GroupResult]], *,
                  share_prefixes: bool = True) -> list[float]:
    """Seconds of recompute + update + post-update KL for each step's trajectories (with each
    distinct prompt run once, or every row whole)."""
    backend = build_backend(config.model_path, config.optim,
                            BackendConfig(threads=1, share_prefixes=share_prefixes))
    o, out = config.optim, []
    for groups in steps:
        if not groups:  # every group of the step had zero advantages: no update
            out.append(0.0)
            continue
        trajectories = [t for g in groups for t in g.trajectories]
        batch = collate(trajectories, backend.tokenizer.pad_token_id)
        adv = torch.randn(len(trajectories))  # the cost does not depend on the values
        start = time.perf_counter()
        old = recompute_logprobs(backend, batch, o.micro_batch_size)
        policy_update(backend, batch, old, adv, config.algorithm.loss,
                      mini_batches=o.mini_batches, micro_batch_size=o.micro_batch_size)
        out.append(time.perf_counter() - start)
    return out


def rollout_floor(config: RunConfig, steps: list[list[GroupResult]], executor: str
                  ) -> list[float]:
    """Seconds for the agent loop to sample each step's prompts again, one thread."""
    from services.learner.data import build_prompt_source
    from services.rollout.agent import AgentLoop
    from services.rollout.engine_factory import build_engine
    from services.rollout.settings import EngineSettings
    from services.rollout.tools import ToolClients

    prompts = build_prompt_source(config)
    engine = build_engine(EngineSettings(model_path=str(config.model_path), threads=1))

    async def run_all() -> list[float]:
        tools = ToolClients(executor, None, timeout_s=30.0, search_top_k=1)  # needs the loop
        loop = AgentLoop(engine, tools, tool_format(config.data.tool_format))
        out = []
        try:
            for groups in steps:
                start = time.perf_counter()
                await asyncio.gather(*(loop.run(prompts.get(g.prompt_id).text,
                                                config.group_size, config.sampling)
                                       for g in groups))
                out.append(time.perf_counter() - start)
            return out
        finally:
            await tools.close()

    try:
        return asyncio.run(run_all())
    finally:
        prompts.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path, default=REPO / "runs/warm/calc")
    parser.add_argument("--config", type=Path, default=REPO / "configs/runs/calc_paretopo.yaml")
    parser.add_argument("--steps", type=int, default=16)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-rl-step-"))
    torch.set_num_threads(1)
    shipped = load_run_config(args.config).model_dump(mode="json")
    stack = start_stack(tmp / "logs")
    try:
        raw = {**shipped, "run_id": "bench-rl", "model_path": str(args.model),
               "output_dir": str(tmp / "out"), "budget": {"max_steps": args.steps},
               "checkpoint_every": 1000, "group_timeout_s": 300,
               "eval": {**shipped["eval"], "every": 10**6, "at_start": False},
               "services": {"redis_url": stack.redis.url, "archive": stack.archive_target,
                            "archive_token": "tok", "namespace": NAMESPACE}}
        config = RunConfig.model_validate(raw)
        seen: list = []
        recorded = asyncio.run(run(config, seen))
        per_step = config.prompts_per_step
        # drop the first step (weight loading, cold caches); a step without an update (all
        # groups zero-advantage) has no learner work
        learner = learner_floor(config, recorded.trained[1:])
        whole_rows = learner_floor(config, recorded.trained[1:], share_prefixes=False)
        rollout = rollout_floor(config, recorded.scored[1:], stack.executor_target)
    finally:
        stack.stop()
    actual = [m.step_s for m in seen[1:]]
    floor = [max(a, b) for a, b in zip(learner, rollout, strict=True)]
    print(f"machine: {torch.get_num_threads()} torch thread per process; config {args.config}")
    print(f"steps measured: {len(actual)} (after one warm-up step); G={config.group_size}, "
          f"{per_step} prompts/step, staleness {config.max_staleness}")
    print(f"actual step      median {median(actual):.2f} s  mean {fmean(actual):.2f} s")
    print(f"learner floor    median {median(learner):.2f} s  (recompute + update + KL)")
    print(f"  same, rows whole median {median(whole_rows):.2f} s  (backend.share_prefixes off: "
          f"{sum(whole_rows) / max(sum(learner), 1e-9):.2f}x the shared-prompt floor)")
    print(f"rollout floor    median {median(rollout):.2f} s  (agent loop, same prompts)")
    print(f"floor max(l, r)  median {median(floor):.2f} s;  synchronous floor (l + r) "
          f"{median(a + b for a, b in zip(learner, rollout, strict=True)):.2f} s")
    print(f"actual / floor   {median(actual) / median(floor):.2f}  (target <= 1.3)")
    print(f"steps per minute {60 / median(actual):.1f}  (target >= 15)")
    for phase in ("wait", "score", "archive", "update", "publish", "queue"):
        print(f"  {phase:<8} {fmean(m.timings.get(phase, 0.0) for m in seen[1:]):.3f} s")


if __name__ == "__main__":
    main()
