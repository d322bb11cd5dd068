"""Settings: one pydantic-settings object, built by the entry point from `CHORUS_*` variables."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from orchestrator.core.errors import ConfigurationError
from orchestrator.core.namespace_access import NamespaceAccess
from orchestrator.llm_prices import LlmSettings
from orchestrator.urls import check_url, has_password, with_password

DEFAULT_POOLS = ("control", "io", "scripts", "ai")


class Settings(BaseSettings):
    """Everything a Chorus process needs to know, from the environment or the CLI."""

    model_config = SettingsConfigDict(env_prefix="CHORUS_", extra="ignore", frozen=True)

    database_url: str = Field(
        default="postgresql+psycopg://postgres@127.0.0.1:5432/chorus",
        description="SQLAlchemy URL of the PostgreSQL database (the source of truth).",
    )
    migration_database_url: str | None = Field(
        default=None,
        description="URL `chorus migrate` connects with: the role that owns the tables. The runtime role (the user "
        "of CHORUS_DATABASE_URL) then gets only what the server and workers need; unset: one role for both.",
    )
    database_runtime_role: str | None = Field(
        default=None,
        description="The role `chorus migrate` grants runtime privileges to; default: CHORUS_DATABASE_URL's user "
        "when CHORUS_MIGRATION_DATABASE_URL is set.",
    )
    database_allow_privileged: bool = Field(
        default=False,
        description="Let `chorus server` beyond loopback run on a superuser connection (refused otherwise).",
    )
    # Before the URLs: their validators read it (pydantic validates fields in declaration order).
    redis_password: SecretStr | None = Field(
        default=None,
        description="Password of the broker (and a Redis result backend), any characters: put into their URLs "
        "percent-encoded unless a URL already holds one. Lets deploy files keep it out of the URL.",
    )
    broker_url: str = Field(default="redis://127.0.0.1:6379/0", description="Celery broker URL (Redis).")
    result_backend: str | None = Field(
        default=None, description="Celery result backend; defaults to the broker URL (chords need Redis)."
    )
    tenant: str = Field(default="main", description="The one tenant served (Kestra OSS accepts only 'main').")
    pools: tuple[str, ...] = Field(default=DEFAULT_POOLS, description="Worker pools, one Celery queue each.")
    worker_concurrency: int = Field(default=2, ge=1, le=256, description="Processes or threads per worker.")
    secrets_dir: Path | None = Field(
        default=None,
        description="A directory of secrets, one file per secret (file name = secret name, plain value): "
        "<dir>/<namespace>/NAME is that namespace's own secret, read first by `secret('NAME')`; <dir>/NAME is a "
        "global one (see CHORUS_GLOBAL_SECRETS). A mounted Kubernetes Secret or Docker secrets.",
    )
    namespace_access: dict[str, Any] = Field(
        default_factory=dict,
        description="Which namespaces may use which others (Kestra EE's allowedNamespaces), as JSON: "
        '{"team.b": ["team.a", {"namespace": "ops.*", "uses": ["kv.read"]}]}. A flow always may use its own '
        "namespace and nothing else unless granted here (orchestrator.core.namespace_access, docs/security.md).",
    )
    global_secrets: tuple[str, ...] = Field(
        default=("*",),
        description="Namespace patterns (`*`, `a.b.*`, `a.b`) whose flows may read global secrets (SECRET_<NAME> "
        "variables, files at the top of CHORUS_SECRETS_DIR); `[]` leaves each namespace only its own "
        "CHORUS_SECRETS_DIR/<namespace>/ secrets. The default keeps Kestra OSS flows working.",
    )
    max_subflow_depth: int = Field(
        default=10, ge=1, le=1000, description="How deep subflows may nest in one execution tree (recursion guard)."
    )
    scripts_user: str | None = Field(
        default=None,
        description="User (name or uid) that script tasks run as when the worker runs as root; default "
        "`chorus-script` if that user exists, else `nobody`. Ignored (scripts run as the worker's user) when the "
        "worker is not root. Root itself is refused.",
    )
    script_max_output_bytes: int = Field(
        default=10 * 1024 * 1024,
        ge=1024,
        description="Most bytes a script task may print (stdout and stderr together, each line a log record); past "
        "it the script's process group is killed and the task fails, so a runaway print cannot flood the worker's "
        "memory or the logs table.",
    )
    script_max_memory_bytes: int = Field(
        default=8 * 1024 * 1024 * 1024,
        ge=0,
        description="Address space of each script process (RLIMIT_AS: every mapping, shared ones included, so a "
        "runtime that reserves much more than it uses, such as a JVM with a large default heap, may need it raised); "
        "0 for none.",
    )
    script_max_file_bytes: int = Field(
        default=4 * 1024 * 1024 * 1024,
        ge=0,
        description="Largest file a script process may write (RLIMIT_FSIZE); 0 for none.",
    )
    script_max_processes: int = Field(
        default=512,
        ge=0,
        description="Most processes and threads the scripts user may have (RLIMIT_NPROC, counted per user), applied "
        "when scripts run as their own user (a root worker): a fork bomb stops there. 0 for none.",
    )
    script_max_cpu_s: int = Field(
        default=0,
        ge=0,
        description="CPU seconds each script process may use (RLIMIT_CPU); 0 for none (a task `timeout` bounds the "
        "wall clock).",
    )
    worker_pool: Literal["prefork", "threads"] = Field(
        default="prefork",
        description="Celery's execution pool for `chorus worker`: prefork (a process per task; SIGALRM timeouts) "
        "or threads (many concurrent I/O-bound tasks per process, for the ai and io pools; a `timeout` is then "
        "enforced by the task's own client timeouts and checked when it returns).",
    )
    sweep_interval_s: float = Field(default=1.0, gt=0, le=60, description="How often the sweeper looks for due work.")
    scheduler_interval_s: float = Field(
        default=1.0, gt=0, le=60, description="How often the scheduler looks for due Schedule triggers."
    )
    stale_after_s: float = Field(
        default=30.0, gt=0, description="A running execution with no progress for this long is re-dispatched."
    )
    stale_backlog_factor: float = Field(
        default=10.0,
        ge=1,
        description="While messages wait in the pools' queues, an execution counts as stale only after this many "
        "times stale_after_s: a queued message is slow, not lost, and sending it again would lengthen the queue.",
    )
    notification_retention_days: float = Field(
        default=7.0,
        gt=0,
        description="How long a notification stays in the outbox once SENT or FAILED (its delivery record: status, "
        "sends, response code); the sweeper deletes older ones. Pending ones are never deleted.",
    )
    heartbeat_interval_s: float = Field(default=5.0, gt=0, description="How often a running task run heartbeats.")
    local_drive_max_runs: int = Field(
        default=64,
        ge=0,
        description="Most pure control task runs (Log, Return, If over them...) an operation runs in its own "
        "transaction before sending the rest to the pools; 0 sends everything, as before local drive.",
    )
    local_drive_max_ms: float = Field(
        default=100.0,
        ge=0,
        description="Longest a transaction keeps running pure control task runs itself (it holds the execution's "
        "lock meanwhile); past it, the rest is sent to the pools.",
    )
    wait_timeout_s: float = Field(default=300.0, gt=0, description="Longest blocking wait of `wait=true`.")
    visibility_timeout_s: int = Field(default=3600, ge=60, description="Redis redelivery timeout of unacked tasks.")
    fanout_chunk: int = Field(
        default=50,
        ge=1,
        le=1000,
        description="Inline children of one fan-out (ForEach/Parallel over Log, Return...) sent per message and "
        "recorded per transaction; 1 sends one message per child.",
    )
    result_expires_s: int = Field(
        default=6 * 3600,
        ge=60,
        description="How long Celery keeps a task's result in Redis (Flower shows it; nothing in Chorus reads it).",
    )
    chord_expires_s: int = Field(
        default=7 * 24 * 3600,
        ge=60,
        description="How long a fan-out's chord counter lives in Redis: past it, a fan-out still running never "
        "joins by message (the sweeper re-plans it from the database).",
    )
    task_sent_events: bool = Field(
        default=True,
        description="Emit Celery's task-sent events (one more Redis publish per message). Flower learns a task's "
        "queue (routing_key, where a re-apply must go) and the tasks still waiting only from them.",
    )
    worker_alive_file: Path | None = Field(
        default=None,
        description="A file the worker's consumer touches every CHORUS_WORKER_ALIVE_INTERVAL_S while it runs "
        "with a live broker connection: its age is the worker's liveness probe.",
    )
    worker_alive_interval_s: float = Field(default=10.0, gt=0, le=300, description="How often that file is touched.")
    worker_drain_s: float | None = Field(
        default=None,
        gt=0,
        description="How long a worker told to stop (SIGTERM: a scale-down, a rollout) lets its running task runs "
        "finish; then each one still running is handed back (its process group stopped, its claim released, its "
        "message re-queued for another worker) instead of being killed mid-way when the grace period ends. Unset: "
        "wait for them however long they take. The chart sets it a margin below terminationGracePeriodSeconds.",
    )
    data_dir: Path = Field(default=Path(".chorus"), description="Where `chorus local` keeps its servers' data.")
    lifeline_fd: int | None = Field(
        default=None,
        ge=0,
        description="Set by `chorus local` for its worker: a pipe whose end means `chorus local` is gone, and the "
        "worker then kills what it started and itself (see orchestrator/lifeline.py).",
    )
    host: str = Field(default="127.0.0.1", description="Address the HTTP server binds.")
    port: int = Field(default=8080, ge=0, le=65535, description="Port the HTTP server binds.")
    log_level: str = Field(default="INFO", description="Root log level.")
    env_vars_prefix: str = Field(
        default="ENV_",
        description="Environment variables with this prefix are `envs.*` in expressions (prefix removed, lower case).",
    )
    envs: dict[str, str] = Field(
        default_factory=dict,
        description="The `envs.*` variables; filled by load_settings() from the prefixed environment variables.",
    )
    globals_: dict[str, Any] = Field(
        default_factory=dict,
        validation_alias="CHORUS_GLOBALS",
        description="Server-wide `globals.*` variables for every flow, as JSON.",
    )
    llm: LlmSettings = Field(default_factory=LlmSettings, description="LLM calls: price table, retry limits (JSON).")
    admin_username: str | None = Field(
        default=None, min_length=1, description="Bootstrap admin created (or updated) at start; enables auth."
    )
    admin_password: SecretStr | None = Field(
        default=None, min_length=8, description="Password of the bootstrap admin (at least 8 characters)."
    )
    auth_enabled: bool | None = Field(
        default=None,
        description="Require credentials; unset means required when an admin is configured or the host is not "
        "loopback. `false` is refused on a non-loopback host.",
    )
    login_max_failures: int = Field(
        default=5, ge=1, description="Failed logins of one username (or of bearer tokens) per address before a lockout."
    )
    login_window_s: float = Field(default=300.0, gt=0, description="Window in which failed logins are counted.")
    login_lockout_s: float = Field(
        default=30.0, gt=0, description="First lockout after too many failed logins; doubles each time, up to 15 min."
    )
    audit_key: SecretStr | None = Field(
        default=None,
        description="Secret for the audit trail's HMAC-SHA256 (at least 32 characters), held by the application and "
        "never stored in the database; without one the trail is only an unkeyed SHA-256 chain.",
    )
    audit_key_file: Path | None = Field(
        default=None, description="A file holding the audit key (e.g. a mounted Secret); instead of CHORUS_AUDIT_KEY."
    )
    audit_previous_keys: tuple[SecretStr, ...] = Field(
        default=(), description="Retired audit keys (JSON list), still accepted by `chorus audit verify`."
    )
    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1024, description="Largest accepted request body.")
    login_address_max_failures: int = Field(
        default=50,
        ge=1,
        description="Failed logins from one client address (any username, any token) in the window before that "
        "address is throttled; it locks no account, so users behind the same NAT elsewhere are unaffected.",
    )
    trusted_proxies: str = Field(
        default="",
        description="Comma-separated addresses or CIDR networks of reverse proxies whose X-Forwarded-For and "
        "X-Forwarded-Proto are believed (e.g. 10.0.0.0/8); empty trusts none, loopback included.",
    )
    cookie_secure: bool | None = Field(
        default=None,
        description="Mark console cookies Secure; unset means when the request came over HTTPS (directly or "
        "through a trusted proxy's X-Forwarded-Proto).",
    )
    token_max_ttl_s: float = Field(
        default=3650 * 86400.0, gt=0, description="Longest lifetime (`expiresIn`) an API token may be given."
    )
    console_token_max_ttl_s: float = Field(
        default=30 * 86400.0,
        gt=0,
        description="Longest lifetime of a token minted by a console session (never non-expiring).",
    )
    max_log_line_chars: int = Field(
        default=65536, ge=256, description="Longer log messages are truncated at this length, with a marker."
    )
    max_labels: int = Field(default=100, ge=1, description="Most labels one execution may carry.")
    max_label_key_chars: int = Field(default=256, ge=1, description="Longest label key.")
    max_label_value_chars: int = Field(default=4096, ge=1, description="Longest label value.")

    @field_validator("database_url", "migration_database_url")
    @classmethod
    def _postgres_only(cls, value: str | None) -> str | None:
        if value is None:
            return None
        # One SQL dialect everywhere: advisory locks, SKIP LOCKED and JSONB are PostgreSQL's.
        if not value.startswith(("postgresql://", "postgresql+psycopg://", "postgres://")):
            raise ValueError("must be a PostgreSQL URL (postgresql+psycopg://...)")
        # A socket directory may come as ?host=/run/postgresql, so the host part may be empty.
        check_url(value, schemes=("postgresql", "postgresql+psycopg", "postgres"), host_required=False)
        if value.startswith(("postgresql://", "postgres://")):
            value = "postgresql+psycopg://" + value.split("://", 1)[1]
        return value

    @field_validator("namespace_access")
    @classmethod
    def _namespace_grants(cls, value: dict[str, Any]) -> dict[str, Any]:
        NamespaceAccess.from_config(value)  # refused at start, with the entry at fault
        return value

    @field_validator("redis_password", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value  # the chart passes an optional Secret key: absent reads as ""

    @field_validator("broker_url")
    @classmethod
    def _redis_only(cls, value: str, info: ValidationInfo) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a Redis URL (redis://host:port/db)")
        return _redis_with_password(value, info)

    @field_validator("result_backend")
    @classmethod
    def _backend_password(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None or not value.startswith(("redis://", "rediss://")):
            return value
        return _redis_with_password(value, info)

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: str) -> str:
        for item in value.split(","):
            if item.strip():
                try:
                    ipaddress.ip_network(item.strip(), strict=False)
                except ValueError:
                    raise ValueError(f"'{item.strip()}' is not an IP address or CIDR network") from None
        return value

    @property
    def trusted_proxy_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        items = (i.strip() for i in self.trusted_proxies.split(","))
        return tuple(ipaddress.ip_network(i, strict=False) for i in items if i)

    @model_validator(mode="after")
    def _admin_pair(self) -> Settings:
        if (self.admin_username is None) != (self.admin_password is None):
            raise ValueError("CHORUS_ADMIN_USERNAME and CHORUS_ADMIN_PASSWORD must be set together")
        return self

    @property
    def effective_result_backend(self) -> str:
        return self.result_backend or self.broker_url

    @property
    def namespace_grants(self) -> NamespaceAccess:
        """`namespace_access` as the policy the workers and the engine ask."""
        return NamespaceAccess.from_config(self.namespace_access)

    @property
    def loopback_only(self) -> bool:
        """Whether the HTTP server binds only a loopback address (the one place auth may be off)."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    @property
    def credentials_configured(self) -> bool:
        """A bootstrap admin is set, or auth was switched on explicitly (users made with `chorus user create`)."""
        return self.admin_username is not None or self.auth_enabled is True

    @property
    def auth_required(self) -> bool:
        """Requests must authenticate; False only for an explicit or credential-less loopback server.

        Without credentials on loopback every request acts as an anonymous admin (`chorus local`).
        """
        if self.auth_enabled is not None:
            return self.auth_enabled
        return self.credentials_configured or not self.loopback_only

    def refuse_unsafe_bind(self) -> None:
        """Raise when the server would listen beyond loopback without any way to authenticate."""
        if self.loopback_only:
            return
        if not self.auth_required:
            raise ConfigurationError(
                "CHORUS_AUTH_ENABLED", f"auth may be off only on a loopback address, not on {self.host}"
            )
        if not self.credentials_configured:
            raise ConfigurationError(
                "CHORUS_HOST",
                f"{self.host} is not a loopback address and no credentials are configured: set "
                "CHORUS_ADMIN_USERNAME and CHORUS_ADMIN_PASSWORD (or CHORUS_AUTH_ENABLED=true with users "
                "made by `chorus user create`), or bind 127.0.0.1",
            )


def _redis_with_password(url: str, info: ValidationInfo) -> str:
    check_url(url, schemes=("redis", "rediss", "unix"), host_required=not url.startswith("unix://"))
    password: SecretStr | None = info.data.get("redis_password")
    if password is None or url.startswith("unix://") or has_password(url):
        return url
    return with_password(url, password.get_secret_value())


def flow_envs(settings: Settings, environ: Mapping[str, str]) -> dict[str, str]:
    """Kestra's `envs`: the prefixed environment variables, prefix removed and lower-cased."""
    prefix = settings.env_vars_prefix
    return {k[len(prefix) :].lower(): v for k, v in environ.items() if prefix and k.startswith(prefix)}


def load_settings(**overrides: object) -> Settings:
    """Build the settings from the environment plus explicit overrides; bad values name their variable."""
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as e:
        first = e.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        if not field:  # a cross-field rule: its message names the variables
            raise ConfigurationError("CHORUS_*", first["msg"]) from e
        # A URL or password may hold a secret: name the variable, never echo its value.
        shown = "" if field.endswith(("url", "backend", "password")) else f" (got {first.get('input')!r})"
        raise ConfigurationError(f"CHORUS_{field.upper()}", f"{first['msg']}{shown}") from e
    if "envs" in overrides:
        return settings
    return settings.model_copy(update={"envs": flow_envs(settings, os.environ)})
