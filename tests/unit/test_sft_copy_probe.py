"""The warm start's copy probe: per tool-needing difficulty, the teacher-forced loss of ideal
demonstrations of held-out items, and a plain verdict."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from paretopo.testbed.config import SftConfig, load_sft_config
from paretopo.testbed.model import TINY_CONFIG, build_model
from paretopo.testbed.sft import CopyProbe, copy_probe
from paretopo.testbed.tokenizer import build_tokenizer

CALC_RECIPE = Path(__file__).resolve().parents[2] / "configs" / "testbed" / "sft_calc.yaml"


def test_verdict_needs_one_difficulty_under_the_bound():
    assert CopyProbe({"hard": 0.02, "multistep": 0.48}, 0.04).copies  # calc seed 0's
    failed = CopyProbe({"hard": 0.29, "multistep": 0.41}, 0.04)  # calc seed 1's
    assert not failed.copies
    assert "has not learnt to copy" in failed.verdict() and "--seed" in failed.verdict()
    assert CopyProbe({"hard": 0.04}, 0.04).copies
    assert not CopyProbe({"hard": 0.053}, 0.04).copies  # copies weakly: RL gains little
    assert CopyProbe({"two_hop": 0.059}, 0.1).copies


def test_judged_difficulties_decide_alone():
    # The AMD VM's calc seed 1: multistep under the bound, hard above it; RL gained +0.06.
    weak = {"hard": 0.057, "multistep": 0.037}
    assert CopyProbe(weak, 0.04).copies
    judged = CopyProbe(weak, 0.04, ("hard",))
    assert not judged.copies and judged.score == 0.057
    assert "at most 0.04 on hard needed" in judged.verdict()
    # The Intel VM's calc seed 0: hard copies, multistep not; RL gained +0.14.
    assert CopyProbe({"hard": 0.020, "multistep": 0.092}, 0.04, ("hard",)).copies
    assert not CopyProbe({"hard": 0.020, "multistep": 0.092}, 0.04,
                         ("hard", "multistep")).copies


def test_shipped_calc_recipe_judges_hard_items():
    cfg = load_sft_config(CALC_RECIPE)
    assert cfg.copy_probe_on == ["hard"]


def test_judging_a_difficulty_without_calls_is_refused():
    with pytest.raises(ValidationError, match=r"copy_probe_on.*easy.*choose from"):
        SftConfig(task="calc", copy_probe_on=["easy"])
    with pytest.raises(ValidationError, match="hard"):
        SftConfig(task="kbqa", copy_probe_on=["hard"])


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
