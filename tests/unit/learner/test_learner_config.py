"""Run configuration: shipped files parse, bad files name the field, derived values."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from paretopo.config import ConfigError
from services.learner.config import RunConfig, load_run_config

SHIPPED = sorted(Path("configs/runs").glob("*.yaml"))
MINIMAL = {"run_id": "r1", "model_path": "m", "output_dir": "o"}


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_configs_parse(path: Path) -> None:
    config = load_run_config(path)
    assert config.algorithm.num_objectives == len(config.algorithm.stage1.initial_weights)


def test_at_least_the_three_shipped_files() -> None:
    assert {"calc_paretopo.yaml", "kbqa_paretopo.yaml", "ci_tiny.yaml"} <= {p.name for p in SHIPPED}


@pytest.mark.parametrize(("patch", "field"), [
    ({"group_size": 1}, "group_size"),
    ({"max_staleness": -1}, "max_staleness"),
    ({"algorithm": {"name": "ppo"}}, "algorithm.name"),
    ({"backend": {"name": "jax"}}, "backend.name"),
    ({"backend": {"zero_stage": 1}}, "backend.zero_stage"),
    ({"optim": {"lr": 0}}, "optim.lr"),
    ({"budget": {}}, "budget"),
    ({"surprise": 1}, "surprise"),
    ({"run_id": "bad id!"}, "run_id"),
    ({"data": {"task": "chess"}}, "data.task"),
    ({"data": {"dataset": "nq"}}, "data"),
    ({"algorithm": {"objectives": ["accuracy", "tool_efficiency", "fun"],
                    "stage1": {"initial_weights": [0.4, 0.3, 0.3],
                               "reference_point": [0, 0, 0]}}}, "objectives"),
    ({"algorithm": {"loss": {"kl_coef": 0.1}}}, "kl_coef"),
])
def test_bad_field_is_named(tmp_path: Path, patch: dict, field: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_run_config(_write(tmp_path, {**MINIMAL, **patch}))
    assert field in str(info.value)
    assert str(tmp_path / "run.yaml") in str(info.value)


def test_missing_required_fields_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_run_config(_write(tmp_path, {"run_id": "x"}))
    assert "model_path" in str(info.value) and "output_dir" in str(info.value)


def test_stage1_steps_from_epochs_or_explicit() -> None:
    config = RunConfig.model_validate({**MINIMAL, "prompts_per_step": 8})
    assert config.stage1_step_count(100) == 13  # ceil(1 epoch * 100 / 8)
    two = RunConfig.model_validate(
        {**MINIMAL, "prompts_per_step": 8, "algorithm": {"stage1": {"stage1_epochs": 2}}})
    assert two.stage1_step_count(100) == 25
    assert RunConfig.model_validate({**MINIMAL, "stage1_steps": 3}).stage1_step_count(100) == 3


def test_three_objectives_accepted() -> None:
    config = RunConfig.model_validate({**MINIMAL, "algorithm": {
        "objectives": ["accuracy", "tool_efficiency", "length_efficiency"],
        "stage1": {"initial_weights": [0.5, 0.3, 0.2], "reference_point": [0, 0, 0]}}})
    assert config.algorithm.num_objectives == 3


def test_greedy_validation_is_one_sample() -> None:
    from services.learner.config import EvalConfig

    assert EvalConfig().samples >= 8 and EvalConfig().temperature == 1.0
    assert EvalConfig(samples=1, temperature=0.0).samples == 1
    with pytest.raises(ValueError, match="greedy samples are all the same"):
        EvalConfig(samples=8, temperature=0.0)
    with pytest.raises(ValueError, match="greedy samples are all the same"):
        EvalConfig(samples=8, sampling={"temperature": 0.0})


def test_validation_rolls_out_with_the_runs_own_limits() -> None:
    cfg = RunConfig.model_validate({
        "run_id": "x", "model_path": "m", "output_dir": "o",
        "sampling": {"temperature": 0.7, "max_new_tokens": 96, "max_completion_tokens": 256,
                     "max_tool_calls": 3, "seed": 5}})
    s = cfg.eval_sampling
    assert (s.temperature, s.max_new_tokens, s.max_completion_tokens, s.max_tool_calls,
            s.seed) == (1.0, 96, 256, 3, None)
