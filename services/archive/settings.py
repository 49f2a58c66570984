"""Archive configuration from the environment (`PARETOPO_ARCHIVE_*`) and flags."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ArchiveSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PARETOPO_ARCHIVE_", extra="forbid")

    host: str = Field("127.0.0.1", description="Interface both servers bind to.")
    grpc_port: int = Field(50051, ge=0, le=65535, description="gRPC port (0: pick a free one).")
    http_port: int = Field(8080, ge=0, le=65535, description="REST/page port.")
    redis_url: str | None = Field(
        None, description="Redis URL; unset starts an embedded redis-server (local use only).")
    redis_dir: str = Field("runs/archive-redis", description="Data dir of the embedded Redis.")
    namespace: str = Field("paretopo", pattern=r"^[A-Za-z0-9_.-]{1,64}$",
                           description="Key prefix, so several deployments can share a Redis.")
    write_token: SecretStr | None = Field(
        None, description="Bearer token for writes (REST, and gRPC when set); unset: REST "
        "writes are refused and gRPC writes are open (internal network).")
    read_token: SecretStr | None = Field(None, description="Bearer token for REST reads; "
                                         "unset: reads are open.")
    http_workers: int = Field(
        1, ge=1, le=64, description="Processes serving REST on the HTTP port (the first also "
        "serves gRPC); more use more cores for reads.")
    max_body_bytes: int = Field(
        1 << 20, ge=1024, le=1 << 30, description="Largest REST request body accepted (bytes); "
        "larger ones get 413 before they are read.")
    reflection: bool = Field(True, description="Enable gRPC server reflection.")
    log_level: str = Field("info", description="Python log level.")
