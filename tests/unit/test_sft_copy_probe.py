"""The warm start's copy probe: per tool-needing difficulty, the teacher-forced loss of ideal
demonstrations of held-out items, and a plain verdict."""

from __future__ import annotations

import pytest

from paretopo.testbed.config import SftConfig
from paretopo.testbed.model import TINY_CONFIG, build_model
from paretopo.testbed.sft import CopyProbe, copy_probe
from paretopo.testbed.tokenizer import build_tokenizer


def test_verdict_needs_one_difficulty_under_the_bound():
    assert CopyProbe({"hard": 0.02, "multistep": 0.48}, 0.04).copies  # calc seed 0's
    failed = CopyProbe({"hard": 0.29, "multistep": 0.41}, 0.04)  # calc seed 1's
    assert not failed.copies
    assert "has not learnt to copy" in failed.verdict() and "--seed" in failed.verdict()
    assert CopyProbe({"hard": 0.04}, 0.04).copies
    assert not CopyProbe({"hard": 0.053}, 0.04).copies  # copies weakly: RL gains little
    assert CopyProbe({"two_hop": 0.059}, 0.1).copies


@pytest.mark.parametrize(("task", "levels"), [
    ("calc", {"hard", "multistep"}),
    ("kbqa", {"one_hop", "two_hop", "two_hop_partial"}),
])
def test_an_untrained_policy_does_not_copy(task, levels):
    tokenizer = build_tokenizer()
    model = build_model(tokenizer, TINY_CONFIG, seed=0)
    model.train()
    probe = copy_probe(model, tokenizer, SftConfig(task=task, seed=0))
    assert set(probe.loss_by_difficulty) == levels  # only difficulties that need a call
    assert all(loss > 1.0 for loss in probe.loss_by_difficulty.values())
    assert not probe.copies
    assert model.training  # left as it was found
