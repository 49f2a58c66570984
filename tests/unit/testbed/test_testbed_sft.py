"""A short SFT run lowers the loss and leaves a loadable Hugging Face checkpoint; every
shipped testbed config parses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from paretopo.testbed.config import SftConfig, load_sft_config
from paretopo.testbed.model import load_policy
from paretopo.testbed.sft import train_sft

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
