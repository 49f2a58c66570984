"""A short SFT run lowers the loss and leaves a loadable Hugging Face checkpoint; every
shipped testbed config parses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from paretopo.testbed import calc
from paretopo.testbed.config import SftConfig, load_sft_config
from paretopo.testbed.model import load_policy
from paretopo.testbed.sft import build_demos, curriculum, is_ideal, masked_lm_loss, train_sft

CONFIGS = sorted((Path(__file__).parents[3] / "configs" / "testbed").glob("*.yaml"))


def test_shipped_configs_parse():
    assert {p.name for p in CONFIGS} >= {"sft_calc.yaml", "sft_kbqa.yaml"}
    for path in CONFIGS:
        cfg = load_sft_config(path)
        assert path.stem.endswith(str(cfg.task))
        assert cfg.optim.max_minutes <= 5  # the CPU budget


def test_unknown_config_keys_are_rejected(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("task: calc\noptim: {learning_rate: 1.0}\n")
    with pytest.raises(ValueError, match="learning_rate"):
        load_sft_config(path)


@pytest.mark.slow
@pytest.mark.parametrize("task", ["calc", "kbqa"])
def test_short_sft_lowers_the_loss(task, tmp_path):
    cfg = SftConfig(
        task=task,
        seed=0,
        out_dir=tmp_path / "ckpt",
        demos={"n_demos": 200, "n_items": 200},
        optim={"batch_size": 8, "max_steps": 40, "warmup_steps": 5, "max_minutes": 4},
        model={
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
        },
    )
    result = train_sft(cfg, progress=False)
    assert result.steps == 40, "the 4-minute cap cut a 40-step run: the machine is overloaded"
    first, last = result.losses[:5], result.losses[-5:]
    print(f"seed 0: loss {sum(first) / 5:.3f} -> {sum(last) / 5:.3f}")
    # From ln(110) ~ 4.7 at random init; 40 steps reach about 2.3. Generous margin: -1 nat.
    assert sum(last) / 5 < sum(first) / 5 - 1.0
    meta = json.loads((tmp_path / "ckpt" / "testbed_sft.json").read_text())
    assert meta["steps"] == 40 and meta["config"]["task"] == task
    model, tokenizer = load_policy(tmp_path / "ckpt")
    assert model.config.hidden_size == 64
    assert tokenizer.convert_tokens_to_ids("</answer>") != tokenizer.unk_token_id


def _token_weight(logits, labels, tokens_per_batch):
    """Gradient of the loss w.r.t. the logits of row 0's only labelled position."""
    logits = logits.clone().requires_grad_(True)
    masked_lm_loss(logits, labels, tokens_per_batch).backward()
    return logits.grad[0, 0].clone()


def test_a_token_weighs_the_same_in_short_and_long_batches():
    """Length-bucketed batches must not up-weight the tokens of short demonstrations."""
    torch.manual_seed(0)
    vocab = 7
    short_labels = torch.tensor([[-100, 3, -100, -100, -100, -100]])  # one labelled token
    long_labels = torch.tensor([[-100, 3, -100, -100, -100, -100], [-100, 1, 2, 4, 5, 6]])
    logits = torch.randn(2, 6, vocab)
    in_short = _token_weight(logits[:1], short_labels, tokens_per_batch=4.0)
    in_long = _token_weight(logits, long_labels, tokens_per_batch=4.0)
    assert torch.allclose(in_short, in_long)
    # The plain per-batch mean (the bug this guards against) weighs it 6x more when alone.
    mean_short = _token_weight(logits[:1], short_labels, tokens_per_batch=None)
    mean_long = _token_weight(logits, long_labels, tokens_per_batch=None)
    assert torch.allclose(mean_short, 6 * mean_long)


def test_curriculum_draws_ideal_demonstrations_first():
    cfg = SftConfig(task="calc", optim={"focus_steps": 50, "focus": ["hard"], "skills_steps": 100})
    demos = build_demos(cfg.model_copy(update={"demos": cfg.demos.model_copy(
        update={"n_demos": 200, "n_items": 200})}))
    by_id = {item.id: str(item.difficulty) for item in calc.generate("train", 200, seed=cfg.seed)}
    difficulty = [by_id[d.item_id] for d in demos]
    (focus_end, focus), (skills_end, skills), (last_end, everything) = curriculum(
        cfg, demos, difficulty)
    assert (focus_end, skills_end, last_end) == (50, 150, float("inf"))
    assert focus and all(is_ideal(demos[i]) and difficulty[i] == "hard" for i in focus)
    assert set(focus) < set(skills) and all(is_ideal(demos[i]) for i in skills)
    assert len(skills) < len(everything) == len(demos)
