"""The warm start shipped for the demo (`paretopo.testbed.shipped`) is a sound checkpoint of
today's task: it learnt from the current items, speaks the testbed tokenizer, and passes the
copy probe that a warm start made here must pass."""

from __future__ import annotations

import json
from pathlib import Path

from paretopo.hf_policy import load_policy
from paretopo.testbed.config import load_sft_config
from paretopo.testbed.sft import SFT_RECORD, copy_probe
from paretopo.testbed.shipped import shipped_warm_start
from paretopo.testbed.tasks import items_version
from paretopo.testbed.tokenizer import build_tokenizer

CONFIGS = Path(__file__).resolve().parents[3] / "configs" / "testbed"


def test_the_calc_warm_start_ships_and_copies() -> None:
    path = shipped_warm_start("calc", 0)
    assert path is not None, "the demo's calc warm start (seed 0) does not ship"
    record = json.loads((path / SFT_RECORD).read_text())
    assert record["items_version"] == items_version("calc")
    assert record["copies"] and record["steps"] > 0 and record["cpu_capability"]
    model, tokenizer = load_policy(path)
    assert tokenizer.get_vocab() == build_tokenizer().get_vocab()
    cfg = load_sft_config(CONFIGS / "sft_calc.yaml")
    probe = copy_probe(model, tokenizer, cfg.model_copy(update={"seed": 0}))
    assert probe.copies, probe.verdict()
    for level, loss in record["copy_probe"].items():  # the record describes these weights
        assert abs(probe.loss_by_difficulty[level] - loss) < 2e-3
