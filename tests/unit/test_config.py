"""Algorithm configuration: defaults, bounds, cross-field checks, YAML loading."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest
from pydantic import ValidationError

from paretopo.config import (
    AlgorithmConfig,
    AlgorithmName,
    ConfigError,
    LossConfig,
    RewardConfig,
    Stage1Config,
    Stage2Config,
    load_yaml,
)
from paretopo.core.advantages import ALGORITHMS

REPO = Path(__file__).resolve().parents[2]


def test_defaults_follow_the_spec():
    cfg = AlgorithmConfig()
    assert cfg.name == "paretopo" and cfg.objectives == ["accuracy", "tool_efficiency"]
    s1 = cfg.stage1
    assert (s1.beta, s1.tau, s1.step_size, s1.weight_floor, s1.amplification) == (
        0.9, 0.01, 0.2, 0.05, 1.0
    )
    assert s1.initial_weights == [0.6, 0.4] and s1.reference_point == [0.0, 0.0]
    assert s1.stage1_epochs == 1
    assert cfg.stage2.pareto_eps == 0.5
    assert cfg.reward == RewardConfig(tool_smoothing=1.0, gate_tool_reward_on_success=False)
    assert cfg.loss == LossConfig(eps_low=0.2, eps_high=0.28, kl_coef=0.0)
    assert cfg.num_objectives == 2


def test_algorithm_names_match_core():
    assert typing.get_args(AlgorithmName) == ALGORITHMS


def test_every_field_is_described():
    for model in (Stage1Config, Stage2Config, RewardConfig, LossConfig, AlgorithmConfig):
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no description"


def assert_error_names(exc: pytest.ExceptionInfo[ValidationError], *words: str) -> None:
    text = str(exc.value)
    for word in words:
        assert word in text, f"{word!r} not in {text}"


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"stage2": {"pareto_eps": 1.0}}, ["stage2.pareto_eps"]),
        ({"stage2": {"pareto_eps": -0.1}}, ["stage2.pareto_eps"]),
        ({"stage1": {"beta": 1.0}}, ["stage1.beta"]),
        ({"stage1": {"beta": -0.5}}, ["stage1.beta"]),
        ({"stage1": {"tau": 0.0}}, ["stage1.tau"]),
        ({"stage1": {"step_size": 0.0}}, ["stage1.step_size"]),
        ({"stage1": {"initial_weights": [0.7, 0.4]}}, ["stage1.initial_weights", "simplex"]),
        ({"stage1": {"initial_weights": [1.2, -0.2]}}, ["stage1.initial_weights", "simplex"]),
        ({"reward": {"tool_smoothing": 0.0}}, ["reward.tool_smoothing"]),
        ({"loss": {"eps_low": 1.0}}, ["loss.eps_low"]),
        ({"loss": {"kl_coef": -1.0}}, ["loss.kl_coef"]),
        ({"stage1": {"betta": 0.5}}, ["stage1.betta", "Extra inputs"]),
        ({"learning_rate": 1e-6}, ["learning_rate", "Extra inputs"]),
        ({"name": "dpo"}, ["name"]),
        ({"objectives": ["accuracy", "accuracy"]}, ["objectives", "unique"]),
        ({"objectives": ["tool_efficiency", "accuracy"]}, ["objectives"]),
        (
            {"objectives": ["accuracy", "tool_efficiency", "length_efficiency"]},
            ["objectives has 3 names", "stage1.initial_weights has 2"],
        ),
        (
            {"stage1": {"initial_weights": [0.5, 0.3, 0.2]}},
            ["initial_weights has 3", "reference_point has 2"],
        ),
        (
            {"stage1": {"weight_floor": 0.6}},
            ["weight_floor"],
        ),
    ],
)
def test_invalid_values_name_the_field(kwargs, words):
    with pytest.raises(ValidationError) as exc:
        AlgorithmConfig.model_validate(kwargs)
    assert_error_names(exc, *words)


def test_three_objectives():
    cfg = AlgorithmConfig(
        objectives=["accuracy", "tool_efficiency", "length_efficiency"],
        stage1={"initial_weights": [0.5, 0.3, 0.2], "reference_point": [0, 0, 0]},
    )
    assert cfg.num_objectives == 3


def test_shipped_configs_parse():
    files = sorted((REPO / "configs").glob("algorithm*.yaml"))
    assert files, "configs/algorithm.default.yaml is missing"
    for path in files:
        assert isinstance(load_yaml(path, AlgorithmConfig), AlgorithmConfig)
    assert load_yaml(REPO / "configs/algorithm.default.yaml", AlgorithmConfig) == AlgorithmConfig()


def test_load_yaml_errors_name_file_and_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("stage2:\n  pareto_eps: 1.5\n")
    with pytest.raises(ConfigError) as exc:
        load_yaml(bad, AlgorithmConfig)
    assert str(bad) in str(exc.value) and "stage2.pareto_eps" in str(exc.value)
    with pytest.raises(ConfigError, match=r"missing\.yaml"):
        load_yaml(tmp_path / "missing.yaml", AlgorithmConfig)
    broken = tmp_path / "broken.yaml"
    broken.write_text("stage1: [unclosed\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml"):
        load_yaml(broken, AlgorithmConfig)
    listing = tmp_path / "list.yaml"
    listing.write_text("- 1\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_yaml(listing, AlgorithmConfig)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_yaml(empty, AlgorithmConfig) == AlgorithmConfig()


def _float_fields():
    for model in (Stage1Config, Stage2Config, RewardConfig, LossConfig):
        for name, field in model.model_fields.items():
            if field.annotation is float:
                yield model, name


@pytest.mark.parametrize(("model", "name"), list(_float_fields()),
                         ids=lambda v: v if isinstance(v, str) else v.__name__)
@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan"), 1e309])
def test_every_float_knob_must_be_finite(model, name, value):
    """A NaN or an infinity (what JSON's 1e309 parses to) passes `ge`/`gt` checks alone and
    then poisons everything computed from it."""
    with pytest.raises(ValidationError) as exc:
        model.model_validate({name: value})
    assert_error_names(exc, name)


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"stage1": {"tau": 1e300}}, ["stage1.tau"]),
        ({"stage1": {"amplification": 1e300}}, ["stage1.amplification"]),
        ({"stage1": {"reference_point": [-1e300, 0.0]}}, ["stage1.reference_point.0"]),
        ({"stage1": {"reference_point": [0.0, 1.5]}}, ["stage1.reference_point.1"]),
        ({"stage1": {"reference_point": [float("nan"), 0.0]}}, ["stage1.reference_point.0"]),
        ({"stage1": {"initial_weights": [float("nan"), 1.0]}}, ["stage1.initial_weights"]),
        ({"reward": {"tool_smoothing": 1e300}}, ["reward.tool_smoothing"]),
        ({"loss": {"eps_high": 1e300}}, ["loss.eps_high"]),
        ({"loss": {"kl_coef": 1e300}}, ["loss.kl_coef"]),
    ],
)
def test_knobs_beyond_their_range_name_the_field(kwargs, words):
    with pytest.raises(ValidationError) as exc:
        AlgorithmConfig.model_validate(kwargs)
    assert_error_names(exc, *words)


def test_range_ends_are_accepted():
    cfg = AlgorithmConfig.model_validate({
        "stage1": {"tau": 1e3, "amplification": 1e3, "reference_point": [-1.0, 1.0]},
        "reward": {"tool_smoothing": 1e6}, "loss": {"eps_high": 10.0, "kl_coef": 1e3}})
    assert cfg.stage1.reference_point == [-1.0, 1.0]
