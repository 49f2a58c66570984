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


def test_shipped_calc_recipe_passes_a_warm_start_that_copies_one_difficulty():
    """With the embeddings apart, seed 0's first run missed one digit position on hard items
    and copied multistep ones; RL gained +0.218 from it (docs/testbed.md)."""
    cfg = load_sft_config(CALC_RECIPE)
    assert cfg.copy_probe_on == [] and not cfg.model.tie_word_embeddings
    assert CopyProbe({"hard": 0.0826, "multistep": 0.0127}, cfg.copy_loss_max).copies


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


def test_shipped_calc_recipe_keeps_the_output_layer_apart(tmp_path):
    """With shared embeddings some initialisations collapse "+" and "-" into one and copy
    every operator as a coin flip (docs/testbed.md, "Why some seeds copy weakly")."""
    from paretopo.hf_policy import load_policy, save_policy

    cfg = load_sft_config(CALC_RECIPE)
    tokenizer = build_tokenizer()
    model = build_model(tokenizer, cfg.model.model_copy(update={"hidden_size": 32,
                        "intermediate_size": 64, "num_hidden_layers": 1}), seed=0)
    assert not cfg.model.tie_word_embeddings and not model.config.tie_word_embeddings
    head, embeddings = model.get_output_embeddings().weight, model.get_input_embeddings().weight
    assert head.data_ptr() != embeddings.data_ptr() and not head.equal(embeddings)
    save_policy(model, tokenizer, tmp_path)
    loaded, _ = load_policy(tmp_path)
    assert loaded.get_output_embeddings().weight.equal(head)
    assert loaded.get_input_embeddings().weight.equal(embeddings)
