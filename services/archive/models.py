"""Wire-facing models of the archive: run configuration, state and report records."""

from __future__ import annotations

import re
from enum import IntEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from paretopo.config import Stage1Config

RUN_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
PROMPT_ID_MAX_CHARS = 256

RunId = Annotated[str, Field(pattern=RUN_ID_PATTERN, description="Run id: [A-Za-z0-9_.-], 1-64.")]
ObjectiveName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"\S",
                                     description="Not blank.")]
# Objective values are in [0, 1] (algorithm.md); a value outside would poison the hypervolume.
ObjectiveValue = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
# Stored and returned numbers are finite: JSON has no infinity, so a non-finite value in a
# response could not even be encoded.
_FINITE = ConfigDict(allow_inf_nan=False)


class Stage(IntEnum):
    """Stage of the schedule; values equal the proto enum `paretopo.v1.Stage`."""

    SCALARIZATION = 1
    PARETO_RANKING = 2


class RunConfig(BaseModel):
    """What the archive needs to know about a training run."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    run_id: RunId
    objectives: list[ObjectiveName] = Field(
        default_factory=lambda: ["accuracy", "tool_efficiency"], min_length=2, max_length=3,
        description="Objective names in order, all maximised; M = 2 or 3.",
        json_schema_extra={"uniqueItems": True},
    )
    stage1: Stage1Config = Field(default_factory=Stage1Config,
                                 description="Stage-1 (dynamic scalarisation) settings.")
    adapt_weights: bool = Field(True, description="False keeps w at w_0 (no_dynamic_weighting).")

    @field_validator("objectives")
    @classmethod
    def _unique_names(cls, names: list[str]) -> list[str]:
        if len(set(names)) != len(names) or any(not n.strip() for n in names):
            raise ValueError(f"objective names must be unique and non-empty, got {names}")
        return names

    @model_validator(mode="after")
    def _lengths_match(self) -> RunConfig:
        m = len(self.objectives)
        for field in ("initial_weights", "reference_point"):
            got = len(getattr(self.stage1, field))
            if got != m:
                raise ValueError(
                    f"stage1.{field} has {got} values but there are {m} objectives "
                    f"({', '.join(self.objectives)})"
                )
        return self

    @property
    def num_objectives(self) -> int:
        return len(self.objectives)


class FrontPoint(BaseModel):
    model_config = _FINITE

    outcome: list[float] = Field(description="Objective vector, in the run's objective order.")
    step: int = Field(description="Training step whose validation produced this point.")


class RunState(BaseModel):
    """The live Stage-1 state of a run, as shown to clients."""

    model_config = _FINITE

    weights: list[float]
    gain: float = Field(description="Smoothed hypervolume gain G_t (Eq. 5).")
    rho: float = Field(description="rho_t = tanh(G_t / tau) (Eq. 6).")
    stage: Stage
    last_step: int = Field(description="Last reported step; -1 before the first report.")
    hypervolume: float
    front: list[FrontPoint]
    known_prompts: int = Field(0, description="Number of prompts whose n* is known.")


class RunInfo(BaseModel):
    config: RunConfig
    state: RunState


class OutcomeRecord(BaseModel):
    """One reported validation outcome and what it did; the history is a list of these."""

    model_config = _FINITE

    step: int
    outcome: list[float]
    delta_hv: float
    gain: float
    rho: float
    weights: list[float] = Field(description="Weights after this report, w_{t+1}.")
    hypervolume: float
    added: bool
    stage: Stage


class OutcomeReport(BaseModel):
    """Body of a REST report; validated like the gRPC request."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    step: int = Field(ge=0, le=2**62, description="Training step t.")
    outcome: list[ObjectiveValue] = Field(
        min_length=1, max_length=3,
        description="Mean validation y_t, one value in [0, 1] per objective of the run.")


class OptimalCallsSummary(BaseModel):
    known_prompts: int = Field(description="Prompts whose n* is known (solved at least once).")
    distribution: dict[int, int] = Field(description="n* value -> number of prompts.")
    mean: float | None = Field(description="Mean n* over known prompts; null when none.")


def valid_prompt_id(prompt_id: str) -> bool:
    return 0 < len(prompt_id) <= PROMPT_ID_MAX_CHARS


def valid_run_id(run_id: str) -> bool:
    return re.fullmatch(RUN_ID_PATTERN, run_id) is not None
