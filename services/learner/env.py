"""Environment overrides of the run config's `services:` block (`PARETOPO_LEARNER_*`).

Containers reach Redis and the archive by names only the deployment knows (`redis`,
`archive:50051`), and the archive write token belongs in a Secret, not in the run-config
ConfigMap. So these six values may come from the environment.

Precedence, highest first: a non-empty `PARETOPO_LEARNER_*` variable, the run config's
`services:` block, the `ServicesConfig` default. An empty variable counts as unset.
Everything else in the run config (the training recipe) comes from the file only.
"""

from __future__ import annotations

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from paretopo.config import ConfigError
from services.learner.config import RunConfig, ServicesConfig

__all__ = ["LearnerEnv", "apply_env"]

ENV_PREFIX = "PARETOPO_LEARNER_"


class LearnerEnv(BaseSettings):
    """The learner's environment. Unset fields leave the run config's value alone; the
    values are checked by `ServicesConfig` itself (one rule per field, in one place)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_ignore_empty=True,
                                      extra="ignore")

    redis_url: str | None = Field(None, description="services.redis_url")
    archive: str | None = Field(None, description="services.archive (host:port)")
    archive_token: str | None = Field(None, description="services.archive_token")
    namespace: str | None = Field(None, description="services.namespace")
    metrics_host: str | None = Field(None, description="services.metrics_host")
    metrics_port: int | None = Field(None, description="services.metrics_port")

    def overrides(self) -> dict[str, object]:
        """The fields that are set, by `ServicesConfig` field name."""
        return self.model_dump(exclude_none=True)


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        name = ENV_PREFIX + ".".join(str(p) for p in err.get("loc", ())).upper()
        parts.append(f"{name}: {err.get('msg', 'invalid')}")
    return "; ".join(parts)


def apply_env(config: RunConfig, env: LearnerEnv | None = None) -> RunConfig:
    """`config` with its `services:` block overridden by the environment (see module doc).

    Raises `ConfigError` naming the variable when a value is malformed."""
    try:
        env = env if env is not None else LearnerEnv()
        overrides = env.overrides()
        if not overrides:
            return config
        services = ServicesConfig.model_validate(
            {**config.services.model_dump(), **overrides})
    except ValidationError as exc:
        raise ConfigError(f"environment: {_describe(exc)}") from None
    return config.model_copy(update={"services": services})
