"""Run configuration of the learner: one YAML file per run, one pydantic model per concern.

`load_run_config(path)` parses a file with `paretopo.config.load_yaml`; any problem raises
`ConfigError` naming the file and each offending field (dotted path). No ML imports here.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from paretopo.config import AlgorithmConfig, ConfigError, load_yaml
from paretopo.jobs import SamplingParams

__all__ = [
    "BackendConfig",
    "BudgetConfig",
    "ConfigError",
    "DataConfig",
    "EvalConfig",
    "OptimConfig",
    "RunConfig",
    "ServicesConfig",
    "load_run_config",
]

RUN_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"  # the archive's run-id rule
KNOWN_OBJECTIVES = ("accuracy", "tool_efficiency", "length_efficiency")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataConfig(_Model):
    """Where prompts come from: a testbed task, or one of the paper's datasets."""

    task: Literal["calc", "kbqa"] = Field("calc", description="Testbed task (dataset: null).")
    dataset: str | None = Field(
        None, description="A paper dataset instead of the testbed: a name known to "
        "`paretopo.datasets` or a .parquet (verl/ToRL/Search-R1) or .jsonl file; prompts are "
        "rendered with the `tool_format`'s template and graded by `paretopo.graders`.")
    eval_dataset: str | None = Field(
        None, description="Validation prompts (name or file); None holds out the last "
        "eval.prompts records of `dataset`.")
    data_dir: Path | None = Field(
        None, description="Directory named datasets are read from (default: env "
        "PARETOPO_SHARED_DATA or ../shared/data).")
    train_items: int = Field(
        2000, ge=1, description="Training items used (at most; a dataset file may hold fewer).")
    tool_format: str = Field("testbed", description="Name in `paretopo.agent_formats.FORMATS`.")

    @model_validator(mode="after")
    def _format_fits_source(self) -> DataConfig:
        from paretopo.agent_formats import FORMATS
        from paretopo.templates import TEMPLATES

        if self.tool_format not in FORMATS:
            raise ValueError(f"tool_format {self.tool_format!r}: unknown; known: "
                             f"{', '.join(sorted(FORMATS))}")
        if self.dataset is not None and self.tool_format not in TEMPLATES:
            raise ValueError(f"dataset {self.dataset!r} needs a prompt template: tool_format "
                             f"must be one of {', '.join(sorted(TEMPLATES))}")
        if self.dataset is None and self.eval_dataset is not None:
            raise ValueError("eval_dataset is set but dataset is null (the testbed task "
                             "brings its own validation split)")
        return self


class OptimConfig(_Model):
    """AdamW on the policy, one or more updates per training step."""

    lr: float = Field(1e-4, gt=0, description="AdamW learning rate.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW decoupled weight decay.")
    grad_clip: float = Field(1.0, gt=0, description="Global gradient-norm clip.")
    mini_batches: int = Field(
        1, ge=1, description="Optimizer steps per training step (the kept trajectories are "
        "split into this many mini-batches; >1 makes the clipping active).")
    micro_batch_size: int = Field(
        32, ge=1, description="Trajectories per forward/backward (gradient accumulation).")


class EvalConfig(_Model):
    """Validation through the rollout path: `samples` sampled completions of each held-out
    prompt with the run's own rollout limits, seeded per (prompt, sample index, policy
    version) unless a seed is set, so two validations of one checkpoint agree exactly.
    Greedy: samples 1, temperature 0."""

    every: int = Field(5, ge=1, description="Validate after every `every` training steps.")
    prompts: int = Field(96, ge=1, description="Held-out validation prompts per validation.")
    samples: int = Field(8, ge=1, le=1024, description="Completions per validation prompt (k).")
    at_start: bool = Field(True, description="Also validate the initial policy (step 0).")
    temperature: float = Field(1.0, ge=0.0, description="Sampling temperature (1: as training "
                               "samples; 0: greedy).")
    sampling: SamplingParams | None = Field(
        None, description="A full override of the validation sampling; None: the run's "
        "`sampling` (its token and call limits) at `temperature`.")

    @model_validator(mode="after")
    def _greedy_is_one_sample(self) -> EvalConfig:
        temperature = self.sampling.temperature if self.sampling else self.temperature
        if temperature == 0 and self.samples > 1:
            raise ValueError(f"eval.samples = {self.samples} with temperature 0: greedy "
                             "samples are all the same; set eval.samples to 1")
        return self


class BudgetConfig(_Model):
    """When the run stops: whichever limit comes first."""

    max_steps: int | None = Field(None, ge=1, description="Training steps at most.")
    max_minutes: float | None = Field(None, gt=0, description="Wall-clock minutes at most.")

    @model_validator(mode="after")
    def _one_limit(self) -> BudgetConfig:
        if self.max_steps is None and self.max_minutes is None:
            raise ValueError("set max_steps and/or max_minutes: a run needs a budget")
        return self


class BackendConfig(_Model):
    """Where the update runs."""

    name: Literal["torch", "deepspeed"] = Field("torch", description="Training backend.")
    zero_stage: Literal[2, 3] = Field(2, description="DeepSpeed ZeRO stage (deepspeed only).")
    device: str = Field("cpu", description="torch device: cpu, cuda, cuda:0 ...")
    threads: int = Field(1, ge=1, description="torch intra-op threads (CPU): 1 where the "
                         "learner shares a small machine with rollout workers.")
    gradient_checkpointing: bool = Field(
        False, description="Recompute each decoder layer's activations in the backward pass "
        "(HF gradient_checkpointing_enable): keeps one layer input per token and layer "
        "instead of every intermediate (docs/memory.md).")
    bf16_autocast: bool = Field(
        True, description="torch backend on CUDA: forward and backward under bf16 autocast "
        "(fp32 master weights and optimizer). Off on CPU whatever this says; DeepSpeed "
        "trains in bf16 on CUDA through its own config.")
    logprob_chunk: int = Field(
        512, ge=0, description="Sequence positions per slice of the fp32 log-softmax/entropy "
        "(the full-vocabulary fp32 tensor never exists for the whole micro-batch); 0: all "
        "positions at once.")
    share_prefixes: bool = Field(
        True, description="Run each distinct prompt of a micro-batch once and every "
        "completion against its keys and values (the same logits and gradients as whole rows, "
        "for the completion's tokens only). Has no effect with gradient_checkpointing: "
        "transformers drops a layer's KV cache when it recomputes activations.")
    publish_dtype: Literal["auto", "float32", "bfloat16"] = Field(
        "auto", description="dtype of published weights (what rollout workers load); auto: "
        "bfloat16 when training on CUDA, float32 on CPU. Checkpoints keep full precision.")

    @property
    def prefixes_shared(self) -> bool:
        """`share_prefixes` as it takes effect (off under gradient checkpointing)."""
        return self.share_prefixes and not self.gradient_checkpointing

    @property
    def published_dtype(self) -> str:
        """`publish_dtype` resolved: "bfloat16" or "float32"."""
        if self.publish_dtype != "auto":
            return self.publish_dtype
        return "bfloat16" if self.device.startswith("cuda") else "float32"


class ServicesConfig(_Model):
    """How the learner reaches the rest of the system."""

    redis_url: str = Field("redis://127.0.0.1:6379/0", description="Redis of the queues.")
    archive: str = Field("127.0.0.1:50051", description="Archive gRPC host:port.")
    archive_token: str | None = Field(None, description="Archive write token, if it has one.")
    archive_timeout_s: float = Field(10.0, gt=0, description="Deadline of each archive call.")
    outage_budget_s: float = Field(
        120.0, gt=0, description="How long Redis or the archive may stay unreachable (a "
        "restart) before the run stops with a checkpoint; calls are retried with backoff.")
    namespace: str = Field("paretopo", pattern=r"^[A-Za-z0-9_.-]{1,64}$",
                           description="Redis key prefix shared with workers and archive.")
    metrics_port: int | None = Field(
        None, ge=0, le=65535, description="Prometheus /metrics and /healthz port; None: off.")
    metrics_host: str = Field("127.0.0.1", description="Interface of the metrics server.")


class RunConfig(_Model):
    """One training run."""

    run_id: str = Field(pattern=RUN_ID_PATTERN, description="Run id (archive rule).")
    seed: int = Field(0, description="Seeds data order, sampling seeds and torch.")
    model_path: Path = Field(description="Initial policy checkpoint directory (HF format).")
    output_dir: Path = Field(description="Checkpoints, published weights and metrics log.")
    data: DataConfig = Field(default_factory=DataConfig)
    algorithm: AlgorithmConfig = Field(default_factory=AlgorithmConfig)
    group_size: int = Field(8, ge=2, le=1024, description="G, trajectories per prompt.")
    prompts_per_step: int = Field(8, ge=1, description="Groups (prompts) per training step.")
    stage1_steps: int | None = Field(
        None, ge=0, description="Training steps in Stage 1; None derives it from "
        "algorithm.stage1.stage1_epochs (see `stage1_step_count`).")
    max_staleness: int = Field(
        1, ge=0, description="Policy versions a group may lag behind; 0 = synchronous.")
    optim: OptimConfig = Field(default_factory=OptimConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    budget: BudgetConfig = Field(default_factory=lambda: BudgetConfig(max_steps=100))
    backend: BackendConfig = Field(default_factory=BackendConfig)
    checkpoint_every: int = Field(5, ge=1, description="Checkpoint every N training steps.")
    keep_versions: int = Field(4, ge=2, description="Published weight versions kept on disk.")
    sampling: SamplingParams = Field(
        default_factory=SamplingParams, description="Training-rollout sampling.")
    services: ServicesConfig = Field(default_factory=ServicesConfig)
    group_timeout_s: float = Field(
        600.0, gt=0, description="Waiting this long for any group without receiving one ends "
        "the run with an error (no rollout worker?).")

    @model_validator(mode="after")
    def _known_objectives(self) -> RunConfig:
        unknown = [o for o in self.algorithm.objectives if o not in KNOWN_OBJECTIVES]
        if unknown:
            raise ValueError(
                f"algorithm.objectives: unknown {unknown}; the learner scores "
                f"{list(KNOWN_OBJECTIVES)}")
        if self.algorithm.loss.kl_coef > 0:
            raise ValueError("algorithm.loss.kl_coef > 0 needs a frozen reference policy, "
                             "which this learner does not keep; set it to 0")
        return self

    def stage1_step_count(self, n_train_prompts: int) -> int:
        """Training steps spent in Stage 1: `stage1_steps` when set, else
        ceil(stage1_epochs · n_train_prompts / prompts_per_step), i.e. the steps whose
        prompts come from the first `stage1_epochs` passes over the training prompts."""
        if self.stage1_steps is not None:
            return self.stage1_steps
        epochs = self.algorithm.stage1.stage1_epochs
        return math.ceil(epochs * n_train_prompts / self.prompts_per_step)

    @property
    def eval_sampling(self) -> SamplingParams:
        """How validation samples: `eval.sampling`, else the training limits at
        `eval.temperature` (validation then measures what training rolls out)."""
        if self.eval.sampling is not None:
            return self.eval.sampling
        return self.sampling.model_copy(update={"temperature": self.eval.temperature,
                                                "seed": None})

    @property
    def checkpoint_dir(self) -> Path:
        return self.output_dir / "checkpoints"

    @property
    def policy_root(self) -> Path:
        """Published weight versions (`v000001` ...), read by the rollout workers."""
        return self.output_dir / "policy"

    @property
    def metrics_log(self) -> Path:
        return self.output_dir / "metrics.jsonl"

    @property
    def tensorboard_dir(self) -> Path:
        """TensorBoard event files of the run (`tensorboard --logdir <output_dir>`)."""
        return self.output_dir / "tensorboard"


def load_run_config(path: str | Path) -> RunConfig:
    """Parse and validate a run YAML file; `ConfigError` names the file and the field."""
    return load_yaml(path, RunConfig)
