"""The demo never reuses a warm start made by another recipe or from another version of the
task's items."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from paretopo.app import demo
from paretopo.testbed import sft
from paretopo.testbed.config import SftConfig, load_sft_config
from paretopo.testbed.tasks import items_version

CALC = load_sft_config(Path(__file__).parents[2] / "configs" / "testbed" / "sft_calc.yaml")


def _checkpoint(path, version: int | None, config: dict | None = None) -> None:
    path.mkdir(parents=True)
    (path / "model.safetensors").write_bytes(b"weights")
    record = {"steps": 1, "config": CALC.model_dump(mode="json") if config is None else config}
    if version is not None:
        record["items_version"] = version
    (path / sft.SFT_RECORD).write_text(json.dumps(record))


def test_the_record_says_which_items_a_warm_start_learnt_from(tmp_path):
    _checkpoint(tmp_path / "now", items_version("calc"))
    _checkpoint(tmp_path / "other", items_version("calc") + 1)
    _checkpoint(tmp_path / "unversioned", None)  # made before the version existed: version 1
    assert sft.made_by_recipe(tmp_path / "now", CALC)
    assert not sft.made_by_recipe(tmp_path / "other", CALC)
    assert sft.made_by_recipe(tmp_path / "unversioned", CALC) == (items_version("calc") == 1)
    assert not sft.made_by_recipe(tmp_path / "absent", CALC)


def test_the_record_says_which_recipe_made_a_warm_start(tmp_path):
    """Another step budget or model shape is another warm start; where it is saved and how
    many threads made it (the one-thread weights either way) are not."""
    made = CALC.model_dump(mode="json")
    _checkpoint(tmp_path / "now", items_version("calc"), {**made, "out_dir": "x", "threads": 2})
    shorter = {**made, "optim": {**made["optim"], "max_steps": 2130}}
    _checkpoint(tmp_path / "shorter", items_version("calc"), shorter)
    tied = CALC.model.tie_word_embeddings
    flipped = {**made, "model": {**made["model"], "tie_word_embeddings": not tied}}
    _checkpoint(tmp_path / "flipped", items_version("calc"), flipped)
    before = {**made, "model": {k: v for k, v in made["model"].items()
                                if k != "tie_word_embeddings"}}  # a record of before the field
    _checkpoint(tmp_path / "before", items_version("calc"), before)
    _checkpoint(tmp_path / "unreadable", items_version("calc"), {"optim": {"gone": 1}})
    assert sft.made_by_recipe(tmp_path / "now", CALC)
    for stale in ("shorter", "flipped", "unreadable"):
        assert not sft.made_by_recipe(tmp_path / stale, CALC), stale
    assert sft.made_by_recipe(tmp_path / "before", CALC) == tied  # True before the field
    assert sft.made_by_recipe(tmp_path / "before", SftConfig(**{**made, "model": {
        **made["model"], "tie_word_embeddings": True}}))  # the field's default then


@pytest.fixture
def trainings(monkeypatch, tmp_path):
    """Run the demo's warm start in `tmp_path`, recording the SFT runs it would start."""
    monkeypatch.chdir(tmp_path)
    runs: list = []
    monkeypatch.setattr(sft, "train_sft", lambda cfg: runs.append(cfg.out_dir))
    return runs


def test_a_stale_default_warm_start_is_trained_again(tmp_path, trainings):
    _checkpoint(tmp_path / "runs/warm/calc", items_version("calc") + 1)
    warnings: list[str] = []
    path = demo.warm_start("calc", None, 0, warnings.append)
    assert trainings == [path] and "another version of the calc items" in warnings[0]


def test_a_default_warm_start_of_another_recipe_is_trained_again(tmp_path, trainings):
    made = CALC.model_dump(mode="json")
    _checkpoint(tmp_path / "runs/warm/calc", items_version("calc"),
                {**made, "optim": {**made["optim"], "max_steps": 1}})
    warnings: list[str] = []
    assert demo.warm_start("calc", None, 0, warnings.append) == trainings[0]
    assert "another warm-start recipe" in warnings[0]


def test_a_current_default_warm_start_is_reused(tmp_path, trainings):
    made = CALC.model_copy(update={"seed": 2}).model_dump(mode="json")
    _checkpoint(tmp_path / "runs/warm/calc-seed2", items_version("calc"), made)
    assert demo.warm_start("calc", None, 2) == Path("runs/warm/calc-seed2")
    assert trainings == []


def test_an_explicit_model_is_used_as_given(tmp_path, trainings):
    _checkpoint(tmp_path / "mine", None)
    assert demo.warm_start("calc", tmp_path / "mine", 0) == tmp_path / "mine"
    assert trainings == []


def test_the_demo_trains_its_warm_start_with_threads_that_keep_the_weights(monkeypatch,
                                                                          tmp_path):
    """Threads change the weights on some CPUs (2026-12-02: another warm start, RL +0.014):
    more than one only where a check finds the same weights (`threads: auto`)."""
    monkeypatch.chdir(tmp_path)
    configs: list = []
    monkeypatch.setattr(sft, "train_sft", configs.append)
    demo.warm_start("calc", None, 0)
    assert [c.threads for c in configs] == ["auto"]
