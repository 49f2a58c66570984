"""The loop learns: over a short run through the real services, the training reward rises.

The reward here is dominated by response-length efficiency (r_len), which an untrained tiny
policy can improve from its first steps (it learns to stop); accuracy-driven learning needs
a warm start that already solves some prompts, which the testbed's quick SFT does not give
within a test's time budget. Fixed seeds; the margin is generous (a few times the noise)."""

from __future__ import annotations

import asyncio
from statistics import fmean

import pytest

from services.learner.config import RunConfig
from services.learner.loop import train

pytestmark = pytest.mark.slow


def test_training_reward_rises(stack, tiny_policy, tmp_path) -> None:
    algorithm = {"name": "fixed_weight",
                 "objectives": ["accuracy", "tool_efficiency", "length_efficiency"],
                 "stage1": {"initial_weights": [0.05, 0.05, 0.9],
                            "reference_point": [0.0, 0.0, 0.0]}}
    config = RunConfig.model_validate(stack.run_config(
        tmp_path, tiny_policy, run_id="learn", algorithm=algorithm, group_size=8,
        prompts_per_step=4, max_staleness=0, budget={"max_steps": 24}, checkpoint_every=50,
        optim={"lr": 3e-3, "mini_batches": 2}, eval={"every": 50, "at_start": False},
        sampling={"temperature": 1.0, "max_new_tokens": 64, "max_completion_tokens": 64,
                  "max_tool_calls": 1}))
    seen = []
    asyncio.run(train(config, on_step=seen.append))
    r_len = [m.objectives["length_efficiency"] for m in seen]
    first, last = fmean(r_len[:4]), fmean(r_len[-4:])
    assert last > first + 0.15, f"r_len per step: {[round(r, 2) for r in r_len]}"
