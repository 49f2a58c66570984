"""Learner step time and its breakdown on the testbed, through the real services, and the
share of step time spent in queues and (de)serialisation (the price of the service split).

    .venv/bin/python benchmarks/bench_learner.py --steps 12

Starts Redis, the archive, the executor and one rollout worker as processes, trains the
default-size testbed policy (untrained, three objectives so every step updates) for
`--steps` steps, then replays the run's real result payloads through Redis to time the
learner-side dequeue: XADD + XREADGROUP + XACK round trips and JSON decoding. Queue share =
(enqueue time measured in the loop + replayed dequeue time) / step time.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from statistics import fmean

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests/integration/learner"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_rl_step import run
from learner_stack import start_stack
from redis.asyncio import Redis

from paretopo.hf_policy import save_policy
from paretopo.jobs import GroupResult, decode, encode
from paretopo.testbed.model import build_model
from paretopo.testbed.tokenizer import build_tokenizer
from services.learner.config import RunConfig


async def replay_dequeue(redis_url: str, run_id: str, payloads: list[bytes]
                         ) -> tuple[int, float, float]:
    """(groups, seconds of XADD+XREADGROUP+XACK, seconds of decoding) for the run's results
    (the learner deletes what it took, so the run hands its groups over as payloads)."""
    redis = Redis.from_url(redis_url)
    stream = f"bench:{run_id}"
    await redis.xgroup_create(stream, "g", id="0", mkstream=True)
    for p in payloads:
        await redis.xadd(stream, {"data": p})
    start = time.perf_counter()
    got = 0
    while got < len(payloads):
        reply = await redis.xreadgroup("g", "c", {stream: ">"}, count=8)
        ids = [eid for _, batch in reply for eid, _ in batch]
        await redis.xack(stream, "g", *ids)
        got += len(ids)
    redis_s = time.perf_counter() - start
    start = time.perf_counter()
    for p in payloads:
        decode(GroupResult, p)
    decode_s = time.perf_counter() - start
    await redis.aclose()
    return len(payloads), redis_s, decode_s


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--prompts", type=int, default=4)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-learner-"))
    tokenizer = build_tokenizer()
    policy = save_policy(build_model(tokenizer), tokenizer, tmp / "policy")
    stack = start_stack(tmp / "logs")
    try:
        config = RunConfig.model_validate(stack.run_config(
            tmp, policy, run_id="bench", group_size=args.group_size,
            prompts_per_step=args.prompts, max_staleness=1, budget={"max_steps": args.steps},
            checkpoint_every=1000, eval={"every": 4, "prompts": 8, "at_start": False},
            algorithm={"objectives": ["accuracy", "tool_efficiency", "length_efficiency"],
                       "stage1": {"initial_weights": [0.5, 0.3, 0.2],
                                  "reference_point": [0, 0, 0]}},
            sampling={"max_new_tokens": 64, "max_completion_tokens": 128,
                      "max_tool_calls": 2}))
        seen: list = []
        recorded = asyncio.run(run(config, seen))
        payloads = [encode(g) for step in recorded.scored for g in step]
        groups, redis_s, decode_s = asyncio.run(replay_dequeue(stack.redis.url, "bench",
                                                               payloads))
    finally:
        stack.stop()
    steady = seen[1:]  # the first step includes the workers' first weight load
    step_s = fmean(m.step_s for m in steady)
    print(f"steps {len(steady)} (after 1 warm-up), G={args.group_size}, "
          f"{args.prompts} prompts/step, eval every 4 steps on 8 prompts")
    print(f"mean step time {step_s:.3f} s")
    for phase in ("wait", "score", "archive", "update", "publish", "eval", "queue"):
        mean = fmean(m.timings.get(phase, 0.0) for m in steady)
        print(f"  {phase:<8} {mean:.4f} s  {100 * mean / step_s:5.1f} %")
    per_group = (redis_s + decode_s) / max(groups, 1)
    dequeue = per_group * args.prompts
    enqueue = fmean(m.timings["queue"] for m in steady)
    share = (enqueue + dequeue) / step_s
    print(f"dequeue replay: {groups} groups, redis {1e3 * redis_s / groups:.2f} ms/group, "
          f"decode {1e3 * decode_s / groups:.2f} ms/group")
    print(f"queue + (de)serialisation per step: {1e3 * (enqueue + dequeue):.1f} ms "
          f"= {100 * share:.2f} % of step time (target < 5 %)")


if __name__ == "__main__":
    main()
