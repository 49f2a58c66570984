"""Wire models of the rollout queue: a job the learner enqueues, the group a worker returns.

One place for the shapes both sides read, so the learner and the rollout workers never
disagree on a field. Messages travel as JSON in a single `data` field of a Redis stream entry
(`paretopo.streams`); `encode`/`decode` are the only (de)serialisers.
"""

from __future__ import annotations

import hashlib
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from paretopo.errors import InvalidArgument, describe_validation_error


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SamplingParams(_Wire):
    """How a worker samples (mapped one to one onto the engine's and vLLM's parameters)."""

    temperature: float = Field(1.0, ge=0.0, description="0 means greedy.")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="Nucleus mass kept.")
    top_k: int = Field(0, ge=0, description="Most likely tokens kept; 0 keeps all.")
    max_new_tokens: int = Field(256, ge=1, description="Tokens generated per turn at most.")
    max_completion_tokens: int = Field(
        1024, ge=1, description="Token budget of the whole completion, tool outputs included."
    )
    max_tool_calls: int = Field(4, ge=0, description="Tool calls executed per trajectory.")
    seed: int | None = Field(None, description="Sampling seed; None draws a fresh one.")


def stable_seed(*parts: object) -> int:
    """A 63-bit sampling seed that is a function of `parts` alone, the same in every process
    (Python's own `hash` of a string is not).

    >>> stable_seed("calc/val/3", 7) == stable_seed("calc/val/3", 7) != stable_seed("x", 7)
    True
    """
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") & (2**63 - 1)


class JobKind(StrEnum):
    TRAIN = "train"
    EVAL = "eval"


class RolloutJob(_Wire):
    """`n_samples` trajectories of one prompt, sampled with a recent enough policy."""

    job_id: str = Field(min_length=1, max_length=200)
    run_id: str = Field(min_length=1, max_length=200)
    kind: JobKind = JobKind.TRAIN
    step: int = Field(0, ge=0, description="Learner step that enqueued the job.")
    prompt_id: str = Field(min_length=1, max_length=500)
    prompt: str = Field(min_length=1, description="The rendered prompt text the policy sees.")
    tool_format: str = Field("testbed", description="Name in `paretopo.agent_formats.FORMATS`.")
    n_samples: int = Field(ge=1, le=1024, description="G, trajectories in the group.")
    sampling: SamplingParams = Field(default_factory=SamplingParams)
    min_policy_version: int = Field(
        0, ge=0, description="Oldest policy version allowed to sample this job (staleness bound)."
    )
    search_top_k: int | None = Field(
        None, ge=1, le=100, description="Passages per search call, as the task's policy was "
        "trained to read them; None: the worker's own setting.")


FinishReason = Literal["answer", "eos", "max_tool_calls", "token_budget", "turn_limit"]


class TrajectoryRecord(_Wire):
    """One finished trajectory. `loss_mask[i]` is 1 exactly when the model generated
    `completion_ids[i]`; tool outputs inserted by the loop are 0."""

    sample_index: int = Field(ge=0)
    prompt_ids: list[int]
    completion_ids: list[int]
    loss_mask: list[int]
    completion_text: str
    answer: str | None = None
    n_tool_calls: int = Field(0, ge=0)
    n_tool_errors: int = Field(0, ge=0)
    n_tool_unavailable: int = Field(
        0, ge=0, description="Calls that failed because the tool service was down or silent: "
        "an infrastructure fault, not the model's; the learner does not train on it.")
    finish_reason: FinishReason
    policy_version: int = Field(ge=0)
    generation_s: float = Field(0.0, ge=0.0)
    tool_s: float = Field(0.0, ge=0.0)

    @model_validator(mode="after")
    def _mask_matches(self) -> TrajectoryRecord:
        if len(self.loss_mask) != len(self.completion_ids):
            raise ValueError(
                f"loss_mask has {len(self.loss_mask)} entries for "
                f"{len(self.completion_ids)} completion tokens"
            )
        if any(m not in (0, 1) for m in self.loss_mask):
            raise ValueError("loss_mask entries must be 0 or 1")
        return self


class GroupResult(_Wire):
    """One message per finished job: its `n_samples` trajectories."""

    job_id: str
    run_id: str
    kind: JobKind
    step: int
    prompt_id: str
    worker: str
    attempt: int = Field(1, ge=1, description="Delivery attempt that produced this result.")
    trajectories: list[TrajectoryRecord]
    elapsed_s: float = Field(0.0, ge=0.0)

    @property
    def policy_version(self) -> int:
        """Oldest policy version among the trajectories (what staleness is measured on)."""
        return min(t.policy_version for t in self.trajectories)


class DeadLetter(_Wire):
    """A job that failed `attempts` times, with the last error."""

    job: RolloutJob
    attempts: int
    reason: str
    worker: str


def encode(message: _Wire) -> bytes:
    """JSON bytes of a wire message."""
    return message.model_dump_json().encode()


def decode(model: type[_Wire], data: bytes | str) -> _Wire:
    """Parse a wire message; malformed input raises `InvalidArgument` naming the field."""
    try:
        return model.model_validate_json(data)
    except ValidationError as exc:
        raise InvalidArgument(
            f"malformed {model.__name__}: {describe_validation_error(exc)}"
        ) from exc
