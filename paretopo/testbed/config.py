"""Configuration of a testbed warm-start (SFT) run: one pydantic model per concern.

Shipped files live in `configs/testbed/`; `paretopo sft --config FILE` reads one, and command
line flags override single fields.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from paretopo.testbed.calc import CalcDifficulty
from paretopo.testbed.demos import DEFAULT_MIX, Strategy
from paretopo.testbed.kbqa import KbqaDifficulty
from paretopo.testbed.model import ModelConfig
from paretopo.testbed.prompts import TaskName
from paretopo.testbed.tools import SEARCH_TOP_K

#: The difficulties the copy probe measures: those whose items need a call.
PROBED_DIFFICULTIES: dict[TaskName, frozenset[str]] = {
    TaskName.CALC: frozenset({CalcDifficulty.HARD, CalcDifficulty.MULTISTEP}),
    TaskName.KBQA: frozenset({KbqaDifficulty.ONE_HOP, KbqaDifficulty.TWO_HOP_PARTIAL,
                              KbqaDifficulty.TWO_HOP}),
}


class DemoConfig(BaseModel):
    """What the warm-start data looks like."""

    model_config = ConfigDict(extra="forbid")

    n_demos: int = Field(8000, ge=1, description="Demonstrations generated (items repeat).")
    n_items: int = Field(
        4000, ge=1, description="Training-split items drawn from (calc; kbqa uses all)."
    )
    mix: dict[int, dict[Strategy, float]] = Field(
        default_factory=lambda: {k: dict(v) for k, v in DEFAULT_MIX.items()},
        description="Strategy probabilities by the item's minimal number of calls.",
    )
    difficulty_weights: dict[str, float] = Field(
        default_factory=dict,
        description="Relative weight of each difficulty when drawing items (default uniform).",
    )
    search_top_k: int = Field(SEARCH_TOP_K, ge=1, le=5, description="Passages per kbqa search.")


class OptimConfig(BaseModel):
    """AdamW with linear warm-up and cosine decay to 10 % of the peak rate."""

    model_config = ConfigDict(extra="forbid")

    lr: float = Field(3e-3, gt=0, description="Peak learning rate.")
    weight_decay: float = Field(0.01, ge=0, description="AdamW decoupled weight decay.")
    beta2: float = Field(0.999, gt=0, lt=1, description="AdamW's second-moment decay.")
    warmup_steps: int = Field(20, ge=0, description="Steps of linear warm-up.")
    batch_size: int = Field(32, ge=1, description="Sequences per optimizer step.")
    max_steps: int = Field(500, ge=1, description="Optimizer steps: the budget (the learning "
                           "rate decays over them; the result does not depend on the load).")
    max_minutes: float | None = Field(
        None, gt=0, description="Optional wall-clock cap, minutes; a run it ends early is "
        "saved with a warning, since what it learnt then depends on the machine's load.")
    grad_clip: float = Field(1.0, gt=0, description="Gradient-norm clip.")
    focus_steps: int = Field(
        0, ge=0, description="First steps drawn only from ideal demonstrations of the `focus` "
        "difficulties: one copy pattern learnt alone is learnt fast, and seeds the others.")
    focus: list[str] = Field(
        default_factory=list, description="Difficulties of the focus phase (e.g. calc: hard).")
    skills_steps: int = Field(
        400, ge=0, description="Steps after the focus phase drawn only from ideal "
        "demonstrations (exact minimal calls, right answer) of every difficulty: the policy "
        "learns to copy before it sees the mix.")


class SftConfig(BaseModel):
    """One warm-start run of the testbed policy on one task."""

    model_config = ConfigDict(extra="forbid")

    task: TaskName = Field(TaskName.CALC, description="Which testbed task to learn.")
    seed: int = Field(0, description="Seed of the task generator, demos, init and batches.")
    out_dir: Path | None = Field(
        None, description="Checkpoint directory; default runs/testbed/<task>/sft."
    )
    restarts: int = Field(
        0, ge=0, description="Train again from another weight initialisation when the "
        "finished run's copy probe fails (it has not learnt to copy the question into its "
        "calls: docs/testbed.md, 'Warm-start seeds'), up to this many times. Each is a whole "
        "run of `optim.max_steps`: the budget stays a step count, at most (1 + restarts) runs.")
    copy_loss_max: float = Field(
        0.1, gt=0, description="The copy probe passes when, on some difficulty that needs a "
        "call (on each of `copy_probe_on`, when set), the teacher-forced loss of ideal "
        "demonstrations of held-out items is at most this (docs/testbed.md, 'Warm-start "
        "seeds').")
    copy_probe_on: list[str] = Field(
        default_factory=list, description="The tool-needing difficulties whose probe loss "
        "decides: each must be at most `copy_loss_max`. Empty: any one of them decides.")
    threads: Annotated[int, Field(ge=1)] | Literal["auto"] = Field(
        1, description="torch intra-op threads (1: the processes of a small machine each keep "
        "a core instead of fighting over both). 'auto': every core of this process when a "
        "short check finds that they give the one-thread weights bit for bit and run faster "
        "(`sft.pick_threads`), else 1; so the warm start is the one-thread one either way.")
    demos: DemoConfig = Field(default_factory=DemoConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)

    @model_validator(mode="after")
    def _probe_difficulties_exist(self) -> SftConfig:
        needs_a_call = PROBED_DIFFICULTIES[self.task]
        unknown = [d for d in self.copy_probe_on if d not in needs_a_call]
        if unknown:
            raise ValueError(f"copy_probe_on: {unknown} are not difficulties of {self.task} "
                             f"that need a call; choose from {sorted(needs_a_call)}")
        return self

    @property
    def checkpoint_dir(self) -> Path:
        return self.out_dir or Path("runs") / "testbed" / str(self.task) / "sft"


def load_sft_config(path: str | Path) -> SftConfig:
    """Parse a YAML file into an `SftConfig` (unknown keys are an error)."""
    return SftConfig.model_validate(yaml.safe_load(Path(path).read_text()) or {})
