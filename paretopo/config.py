"""Typed algorithm configuration (pydantic v2), with the defaults of ``algorithm.md``.

One model per concern; every field has a description and bounds; unknown keys are errors.
No ML imports here: the algorithm names are a ``Literal`` that a unit test keeps equal to
``paretopo.core.advantages.ALGORITHMS``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

__all__ = [
    "AlgorithmConfig",
    "AlgorithmName",
    "ConfigError",
    "LossConfig",
    "RewardConfig",
    "Stage1Config",
    "Stage2Config",
    "load_yaml",
]

AlgorithmName = Literal[
    "paretopo",
    "no_stage1",
    "no_stage2",
    "no_dynamic_weighting",
    "no_pareto_ranking",
    "grpo",
    "otc_grpo",
    "mo_grpo",
    "fixed_weight",
]

# The estimators read objective 0 as accuracy and objective 1 as tool efficiency.
_LEADING_OBJECTIVES = ("accuracy", "tool_efficiency")

SIMPLEX_TOLERANCE = 1e-6


# Upper bounds of the unbounded knobs: far past any useful setting, low enough that the
# arithmetic they enter (tanh(G/τ), (1 + λ·ρ)·A, cos(mπ/(2m + c)), clipped ratios, KL
# penalties) stays finite.
MAX_TAU = 1e3
MAX_AMPLIFICATION = 1e3
MAX_TOOL_SMOOTHING = 1e6
MAX_CLIP = 10.0
MAX_KL_COEF = 1e3
# Objectives are in [0, 1], so a reference point outside [-1, 1] only inflates the hypervolume.
REFERENCE_BOUND = 1.0
ReferenceValue = Annotated[float, Field(ge=-REFERENCE_BOUND, le=REFERENCE_BOUND)]


class _Model(BaseModel):
    # Every float of every configuration must be finite: a NaN or an infinity (JSON 1e309)
    # passes most range checks and then poisons every value computed from it.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class Stage1Config(_Model):
    """Stage 1: hypervolume-guided dynamic scalarization (Eqs. 5–6 and the weight move)."""

    beta: float = Field(0.9, ge=0.0, lt=1.0, description="β, smoothing of the gain G (Eq. 5).")
    tau: float = Field(
        0.01, gt=0.0, le=MAX_TAU, description="τ, temperature of ρ = tanh(G/τ) (Eq. 6)."
    )
    step_size: float = Field(
        0.2, gt=0.0, le=1.0, description="α, how far one step moves the weights toward ĝ."
    )
    weight_floor: float = Field(
        0.05, ge=0.0, lt=1.0, description="w_min, lower bound on every weight."
    )
    amplification: float = Field(
        1.0, ge=0.0, le=MAX_AMPLIFICATION,
        description="λ, advantage amplification (1 + λ·ρ) in Stage 1.",
    )
    initial_weights: list[float] = Field(
        default_factory=lambda: [0.6, 0.4],
        description="w_0, one weight per objective, on the simplex (non-negative, sum 1).",
    )
    reference_point: list[ReferenceValue] = Field(
        default_factory=lambda: [0.0, 0.0],
        description="z, hypervolume reference point, one value per objective, each in [-1, 1].",
    )
    stage1_epochs: int = Field(
        1, ge=0, description="Epochs over the training prompts spent in Stage 1."
    )

    @field_validator("initial_weights")
    @classmethod
    def _on_simplex(cls, weights: list[float]) -> list[float]:
        if any(not math.isfinite(w) or w < 0 for w in weights):
            raise ValueError(f"weights off the simplex: every weight must be >= 0, got {weights}")
        if abs(sum(weights) - 1.0) > SIMPLEX_TOLERANCE:
            raise ValueError(f"weights off the simplex: they sum to {sum(weights)}, not 1")
        return weights

    @model_validator(mode="after")
    def _consistent(self) -> Stage1Config:
        m = len(self.initial_weights)
        if len(self.reference_point) != m:
            raise ValueError(
                f"initial_weights has {m} entries but reference_point has "
                f"{len(self.reference_point)}: both need one per objective"
            )
        if self.weight_floor * m > 1.0 + SIMPLEX_TOLERANCE:
            raise ValueError(
                f"weight_floor {self.weight_floor} times {m} objectives exceeds 1: "
                "no weights satisfy the floor"
            )
        return self


class Stage2Config(_Model):
    """Stage 2: Pareto-ranking advantages (Eqs. 7–9)."""

    pareto_eps: float = Field(
        0.5, ge=0.0, lt=1.0, description="ε, weight of the within-rank score (Eq. 9)."
    )


class RewardConfig(_Model):
    """Objective computation (Eq. 4 and r_acc)."""

    tool_smoothing: float = Field(
        1.0, gt=0.0, le=MAX_TOOL_SMOOTHING, description="c, smoothing constant of Eq. 4."
    )
    gate_tool_reward_on_success: bool = Field(
        False, description="Use r_tool · r_acc instead of the ungated r_tool."
    )


class LossConfig(_Model):
    """DAPO policy loss."""

    eps_low: float = Field(
        0.2, ge=0.0, lt=1.0, description="Lower clip range: ratio >= 1 − eps_low."
    )
    eps_high: float = Field(
        0.28, ge=0.0, le=MAX_CLIP,
        description="Upper clip range (clip-higher): ratio <= 1 + eps_high.",
    )
    kl_coef: float = Field(
        0.0, ge=0.0, le=MAX_KL_COEF,
        description="Weight of the k3 KL penalty to a frozen reference; 0 = off.",
    )


class AlgorithmConfig(_Model):
    """The whole algorithm: which variant, which objectives and every stage's knobs."""

    name: AlgorithmName = Field(
        "paretopo", description="Algorithm or ablation (algorithm.md, 'Baselines')."
    )
    objectives: list[str] = Field(
        default_factory=lambda: list(_LEADING_OBJECTIVES),
        min_length=2,
        max_length=3,
        description="Objective names in reward-column order; accuracy and tool_efficiency "
        "first, an optional third (e.g. length_efficiency).",
    )
    stage1: Stage1Config = Field(default_factory=Stage1Config, description="Stage 1 knobs.")
    stage2: Stage2Config = Field(default_factory=Stage2Config, description="Stage 2 knobs.")
    reward: RewardConfig = Field(default_factory=RewardConfig, description="Reward knobs.")
    loss: LossConfig = Field(default_factory=LossConfig, description="Policy-loss knobs.")

    @field_validator("objectives")
    @classmethod
    def _known_order(cls, names: list[str]) -> list[str]:
        if len(set(names)) != len(names):
            raise ValueError(f"objective names must be unique, got {names}")
        if tuple(names[:2]) != _LEADING_OBJECTIVES:
            raise ValueError(
                f"the first two objectives must be {list(_LEADING_OBJECTIVES)} (the advantage "
                f"estimators read them by position), got {names}"
            )
        return names

    @model_validator(mode="after")
    def _objective_count(self) -> AlgorithmConfig:
        m = len(self.objectives)
        for field in ("initial_weights", "reference_point"):
            n = len(getattr(self.stage1, field))
            if n != m:
                raise ValueError(
                    f"objectives has {m} names but stage1.{field} has {n} entries"
                )
        return self

    @property
    def num_objectives(self) -> int:
        """M, the number of objectives."""
        return len(self.objectives)


class ConfigError(ValueError):
    """A configuration file is missing, unreadable, or invalid; the message names the file
    and every offending field."""


M = TypeVar("M", bound=BaseModel)


def _describe(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        where = ".".join(str(part) for part in err["loc"]) or "(top level)"
        lines.append(f"  {where}: {err['msg']}")
    return "\n".join(lines)


def load_yaml(path: str | Path, model: type[M]) -> M:
    """Parse the YAML file ``path`` into ``model``.

    Raises
    ------
    ConfigError
        Naming the file and, for invalid content, each offending field (dotted path).
    """
    path = Path(path)
    try:
        data: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read configuration: {exc}") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{path}: invalid {model.__name__}:\n{_describe(exc)}") from exc
