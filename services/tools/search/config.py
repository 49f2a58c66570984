"""Configuration of the search server: environment `PARETOPO_SEARCH_*`, overridden by flags."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.tools.search.service import Limits

DEFAULT_PORT = 50071


class SearchSettings(BaseSettings):
    """Everything the search server needs; built in `main()`, never at import time."""

    model_config = SettingsConfigDict(env_prefix="PARETOPO_SEARCH_", extra="forbid")

    index_dir: Path = Field(description="Index directory written by the index builder.")
    host: str = Field("127.0.0.1", description="Interface the gRPC server binds.")
    port: int = Field(DEFAULT_PORT, ge=0, le=65535, description="gRPC port (0: any free).")
    metrics_port: int = Field(0, ge=0, le=65535,
                              description="Prometheus /metrics HTTP port; 0 disables it.")
    max_queries: int = Field(256, ge=1, le=65536, description="Queries per request, at most.")
    max_query_chars: int = Field(4096, ge=1, le=1_000_000,
                                 description="Characters per query, at most.")
    max_top_k: int = Field(50, ge=1, le=10_000, description="Largest top_k accepted.")
    default_top_k: int = Field(3, ge=1, description="top_k when a request leaves it unset.")
    workers: int = Field(2, ge=1, le=64,
                         description="Threads that run retrieval (concurrent batches).")
    device: str = Field("auto", description="Dense only: torch device, 'auto' = CUDA if any.")
    faiss_gpu: Literal["auto", "on", "off"] = Field(
        "auto", description="Dense flat index only: search the fp16 shards on all CUDA GPUs "
                            "with torch ('auto': when there is one; 'on': refuse to start "
                            "without; 'off': CPU, fp32 blocks over the memory-mapped shards).")
    nprobe: int | None = Field(None, ge=1, description="Dense ivfpq only: lists scanned per "
                                                       "query (unset: the manifest's).")
    rerank: int | None = Field(None, ge=0, description="Dense ivfpq/sq8 only: re-score "
                                                       "k*rerank candidates on the fp16 shards "
                                                       "(unset: the manifest's; 0: off).")
    model_path: str | None = Field(None, description="Dense only: load the manifest's model "
                                                     "from this path instead of its name.")
    torch_threads: int = Field(0, ge=0, le=256,
                               description="Dense only: torch intra-op threads; 0 = default.")
    grace_s: float = Field(5.0, ge=0, description="Seconds in-flight calls get on SIGTERM.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Logging level.")

    @model_validator(mode="after")
    def _default_within_max(self) -> SearchSettings:
        if self.default_top_k > self.max_top_k:
            raise ValueError(f"default_top_k={self.default_top_k} exceeds "
                             f"max_top_k={self.max_top_k}")
        return self

    @property
    def ann_override(self) -> dict[str, int]:
        """Serving-time changes to the manifest's ANN search parameters."""
        return {k: v for k, v in (("nprobe", self.nprobe), ("rerank", self.rerank))
                if v is not None}

    @property
    def limits(self) -> Limits:
        return Limits(max_queries=self.max_queries, max_query_chars=self.max_query_chars,
                      max_top_k=self.max_top_k, default_top_k=self.default_top_k)
