"""Settings: one pydantic-settings object, built by the entry point from `CHORUS_*` variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from orchestrator.core.errors import ConfigurationError
from orchestrator.llm_prices import LlmSettings

DEFAULT_POOLS = ("control", "io", "scripts", "ai")


class Settings(BaseSettings):
    """Everything a Chorus process needs to know, from the environment or the CLI."""

    model_config = SettingsConfigDict(env_prefix="CHORUS_", extra="ignore", frozen=True)

    database_url: str = Field(
        default="postgresql+psycopg://postgres@127.0.0.1:5432/chorus",
        description="SQLAlchemy URL of the PostgreSQL database (the source of truth).",
    )
    broker_url: str = Field(default="redis://127.0.0.1:6379/0", description="Celery broker URL (Redis).")
    result_backend: str | None = Field(
        default=None, description="Celery result backend; defaults to the broker URL (chords need Redis)."
    )
    tenant: str = Field(default="main", description="The one tenant served (Kestra OSS accepts only 'main').")
    pools: tuple[str, ...] = Field(default=DEFAULT_POOLS, description="Worker pools, one Celery queue each.")
    worker_concurrency: int = Field(default=2, ge=1, le=256, description="Processes or threads per worker.")
    sweep_interval_s: float = Field(default=1.0, gt=0, le=60, description="How often the sweeper looks for due work.")
    stale_after_s: float = Field(
        default=30.0, gt=0, description="A running execution with no progress for this long is re-dispatched."
    )
    heartbeat_interval_s: float = Field(default=5.0, gt=0, description="How often a running task run heartbeats.")
    wait_timeout_s: float = Field(default=300.0, gt=0, description="Longest blocking wait of `wait=true`.")
    visibility_timeout_s: int = Field(default=3600, ge=60, description="Redis redelivery timeout of unacked tasks.")
    data_dir: Path = Field(default=Path(".chorus"), description="Where `chorus local` keeps its servers' data.")
    host: str = Field(default="127.0.0.1", description="Address the HTTP server binds.")
    port: int = Field(default=8080, ge=0, le=65535, description="Port the HTTP server binds.")
    log_level: str = Field(default="INFO", description="Root log level.")
    llm: LlmSettings = Field(default_factory=LlmSettings, description="LLM calls: price table, retry limits (JSON).")

    @field_validator("database_url")
    @classmethod
    def _postgres_only(cls, value: str) -> str:
        # One SQL dialect everywhere: advisory locks, SKIP LOCKED and JSONB are PostgreSQL's.
        if not value.startswith(("postgresql://", "postgresql+psycopg://", "postgres://")):
            raise ValueError("must be a PostgreSQL URL (postgresql+psycopg://...)")
        if value.startswith(("postgresql://", "postgres://")):
            value = "postgresql+psycopg://" + value.split("://", 1)[1]
        return value

    @field_validator("broker_url")
    @classmethod
    def _redis_only(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a Redis URL (redis://host:port/db)")
        return value

    @property
    def effective_result_backend(self) -> str:
        return self.result_backend or self.broker_url


def load_settings(**overrides: object) -> Settings:
    """Build the settings from the environment plus explicit overrides; bad values name their variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as e:
        first = e.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise ConfigurationError(
            f"CHORUS_{field.upper()}", f"{first['msg']} (got {first.get('input')!r})"
        ) from e
