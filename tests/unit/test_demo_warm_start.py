"""The demo never reuses a warm start that learnt from another version of the task's items."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from paretopo.app import demo
from paretopo.testbed import sft
from paretopo.testbed.tasks import items_version


def _checkpoint(path, version: int | None) -> None:
    path.mkdir(parents=True)
    (path / "model.safetensors").write_bytes(b"weights")
    record = {"steps": 1} if version is None else {"steps": 1, "items_version": version}
    (path / sft.SFT_RECORD).write_text(json.dumps(record))


def test_the_record_says_which_items_a_warm_start_learnt_from(tmp_path):
    _checkpoint(tmp_path / "now", items_version("calc"))
    _checkpoint(tmp_path / "other", items_version("calc") + 1)
    _checkpoint(tmp_path / "unversioned", None)  # made before the version existed: version 1
    assert sft.trained_on_current_items(tmp_path / "now", "calc")
    assert not sft.trained_on_current_items(tmp_path / "other", "calc")
    for task in ("calc", "kbqa"):
        assert sft.trained_on_current_items(tmp_path / "unversioned", task) == (
            items_version(task) == 1)
    assert not sft.trained_on_current_items(tmp_path / "absent", "calc")


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


def test_a_current_default_warm_start_is_reused(tmp_path, trainings):
    _checkpoint(tmp_path / "runs/warm/calc-seed2", items_version("calc"))
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
