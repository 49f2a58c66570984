"""Rollout worker configuration from the environment (`PARETOPO_ROLLOUT_*`) and flags."""

from __future__ import annotations

import os
import socket
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_worker_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class EngineSettings(BaseModel):
    """How to build an engine (the worker fills it from `PARETOPO_ROLLOUT_*`)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["torch", "vllm"] = Field("torch", description="Inference engine.")
    model_path: str = Field(description="Hugging Face causal LM checkpoint directory.")
    version: int = Field(0, ge=0, description="Policy version of the weights at model_path.")
    device: Literal["cpu", "cuda"] = Field("cpu", description="Device of the torch engine.")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="Weights dtype; auto: float32 on CPU, bfloat16 on CUDA.")
    threads: int | None = Field(None, ge=1, description="torch intra-op threads (CPU).")
    max_batch_size: int = Field(64, ge=1, description="Sequences decoded together at most.")
    batch_window_ms: float = Field(
        5.0, ge=0.0, le=1000.0,
        description="How long the scheduler collects generate requests before a batch starts.")
    seed: int | None = Field(None, description="Seed of the sampling generator.")
    gpu_memory_utilization: float = Field(0.85, gt=0.0, le=1.0, description="vLLM only.")
    max_model_len: int | None = Field(None, ge=16, description="vLLM only: context length.")

    @property
    def torch_dtype_name(self) -> str:
        if self.dtype != "auto":
            return self.dtype
        return "bfloat16" if self.device == "cuda" else "float32"


class RolloutSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PARETOPO_ROLLOUT_", extra="forbid")

    redis_url: str = Field(description="Redis URL of the job and result streams (required).")
    namespace: str = Field("paretopo", pattern=r"^[A-Za-z0-9_.-]{1,64}$",
                           description="Key prefix shared with the learner.")
    executor: str | None = Field(None, description="Python executor gRPC target host:port.")
    search: str | None = Field(None, description="Search service gRPC target host:port.")
    search_top_k: int = Field(3, ge=1, le=100, description="Passages per search call.")
    engine: Literal["torch", "vllm"] = Field("torch", description="Inference engine.")
    device: Literal["cpu", "cuda"] = Field("cpu", description="Device of the torch engine.")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="Weights dtype (auto: float32 on CPU, bfloat16 on CUDA).")
    threads: int | None = Field(None, ge=1, description="torch intra-op threads.")
    max_batch_size: int = Field(64, ge=1, description="Sequences the engine decodes together.")
    batch_window_ms: float = Field(5.0, ge=0, le=1000,
                                   description="Time the engine collects requests for a batch.")
    gpu_memory_utilization: float = Field(0.85, gt=0, le=1, description="vLLM only.")
    max_model_len: int | None = Field(None, ge=16, description="vLLM only: context length.")
    seed: int | None = Field(None, description="Seed of the engine's sampling stream.")
    worker_name: str = Field(default_factory=default_worker_name, min_length=1,
                             max_length=200, description="Consumer name in the group.")
    http_host: str = Field("0.0.0.0", description="Interface of the health/metrics server.")
    http_port: int = Field(9101, ge=0, le=65535,
                           description="/healthz, /readyz, /metrics port (0: off).")
    claim_idle_ms: int = Field(60_000, ge=100, description=(
        "A job pending this long on a silent worker is claimed by another (live workers "
        "touch their jobs every third of it)."))
    max_attempts: int = Field(3, ge=1, le=100,
                              description="Deliveries of a job before it is dead-lettered.")
    tool_timeout_s: float = Field(30.0, gt=0, le=3600, description="Deadline of a tool call.")
    max_concurrent_jobs: int = Field(8, ge=1, le=1024, description=(
        "Jobs (groups) in flight at once: 8 groups of G = 8 fill the engine's 64-row batch, so "
        "a training step's 8 prompts decode together (with 4: two waves of 32 rows, and a "
        "~12 % slower RL step, BENCHMARKS.md)."))
    version_wait_s: float = Field(300.0, gt=0, description=(
        "How long a job waits for the policy version it needs before the attempt fails."))
    shutdown_grace_s: float = Field(30.0, ge=0, description=(
        "On SIGTERM, time to finish jobs in flight; unfinished ones are released."))
    block_ms: int = Field(1000, ge=10, le=60_000, description="XREADGROUP block time.")
    log_level: str = Field("info", description="Python log level.")

    def engine_settings(self, model_path: str, version: int) -> EngineSettings:
        return EngineSettings(
            kind=self.engine, model_path=model_path, version=version, device=self.device,
            dtype=self.dtype, threads=self.threads, max_batch_size=self.max_batch_size,
            batch_window_ms=self.batch_window_ms, seed=self.seed,
            gpu_memory_utilization=self.gpu_memory_utilization,
            max_model_len=self.max_model_len)
