"""Prometheus metrics of every Chorus process: declared once, set up by the entry point, exposed on demand.

Names are `chorus_<thing>_<unit>`; labels are bounded (namespace, flow, pool, task type, state, provider,
model; never an id). Nothing happens at import: an entry point calls `setup_metrics()` (which decides
between one registry for a single process and prometheus-client's multiprocess mode for prefork
workers), and code that records calls `metrics()` to get the process's `Metrics`.

The AI pool records LLM usage with `record_llm_call()`; the scheduler records its fires with
`record_schedule_fire()` and serves them with `serve_metrics(MetricsSettings())`.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, start_http_server, values
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

logger = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Task runs range from a Log (milliseconds) to an LLM agent or a script (many minutes).
_RUN_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
_HTTP_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
# The bucket boundaries OpenTelemetry's GenAI conventions advise for these two histograms.
_GEN_AI_TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
_GEN_AI_DURATION_BUCKETS_S = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
#: The GenAI conventions' attributes as Prometheus labels (dots become underscores, as the OTel exporter does).
_GEN_AI_LABELS = ["gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model", "gen_ai_response_model"]


class MetricsSettings(BaseSettings):
    """Where a process keeps and serves its metrics (`CHORUS_METRICS_*`)."""

    model_config = SettingsConfigDict(env_prefix="CHORUS_METRICS_", extra="ignore", frozen=True)

    port: int = Field(
        default=9464, ge=0, le=65535, description="HTTP port of a worker group's /metrics (0 turns it off)."
    )
    host: str = Field(
        default="127.0.0.1",
        description="Address a worker group's (or the scheduler's) /metrics binds; set 0.0.0.0 for a Prometheus "
        "on another host (the Helm chart and compose file do).",
    )
    dir: Path | None = Field(
        default=None,
        description="Multiprocess directory of a worker group (emptied at start); a fresh temporary one if unset.",
    )
    merge_urls: tuple[str, ...] = Field(
        default=(),
        description="Other processes' /metrics URLs (JSON list) that the API's /metrics includes with a `source` "
        "label; `chorus local` sets its worker's.",
    )


class Metrics:
    """Every metric object of Chorus; one instance per process (see `metrics()`)."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        r = registry
        # API
        self.http_requests = Counter(
            "chorus_http_requests",
            "HTTP requests served, by route template.",
            ["method", "route", "status"],
            registry=r,
        )
        self.http_request_duration = Histogram(
            "chorus_http_request_duration_seconds",
            "HTTP request latency, by route template.",
            ["method", "route"],
            buckets=_HTTP_BUCKETS_S,
            registry=r,
        )
        # Executions and task runs (from the engine's committed transitions)
        self.executions_started = Counter(
            "chorus_executions_started", "Executions created.", ["namespace", "flow"], registry=r
        )
        self.executions_ended = Counter(
            "chorus_executions_ended",
            "Executions that reached a final state.",
            ["namespace", "flow", "state"],
            registry=r,
        )
        self.execution_duration = Histogram(
            "chorus_execution_duration_seconds",
            "Time from creation to final state of an execution.",
            ["namespace", "flow"],
            buckets=_RUN_BUCKETS_S,
            registry=r,
        )
        self.task_runs_ended = Counter(
            "chorus_task_runs_ended",
            "Task runs that reached a final state.",
            ["task_type", "pool", "state"],
            registry=r,
        )
        self.task_run_duration = Histogram(
            "chorus_task_run_duration_seconds",
            "Time from a task run's first claim to its final state (all attempts).",
            ["task_type", "pool"],
            buckets=_RUN_BUCKETS_S,
            registry=r,
        )
        self.task_run_retries = Counter(
            "chorus_task_run_retries",
            "Failed attempts that scheduled another attempt.",
            ["task_type", "pool"],
            registry=r,
        )
        self.audit_events = Counter(
            "chorus_audit_events_written", "Audit events written for state changes.", ["kind"], registry=r
        )
        # Workers (from Celery signals)
        self.celery_tasks_in_flight = Gauge(
            "chorus_worker_celery_tasks_in_flight",
            "Celery tasks executing now in a worker group.",
            ["pool"],
            multiprocess_mode="livesum",
            registry=r,
        )
        self.celery_task_duration = Histogram(
            "chorus_worker_celery_task_duration_seconds",
            "Wall time of one Celery task (claim, run and report of one task run; or a join).",
            ["pool", "celery_task", "outcome"],
            buckets=_RUN_BUCKETS_S,
            registry=r,
        )
        # Sweeper
        self.sweeper_runs = Counter("chorus_sweeper_runs", "Sweeps performed.", ["outcome"], registry=r)
        self.sweeper_lag = Gauge(
            "chorus_sweeper_lag_seconds",
            "How late the last sweep started compared with its interval.",
            multiprocess_mode="max",
            registry=r,
        )
        self.sweeper_last_run = Gauge(
            "chorus_sweeper_last_run_timestamp_seconds",
            "Unix time of the last completed sweep.",
            multiprocess_mode="max",
            registry=r,
        )
        self.sweeper_recovered = Counter(
            "chorus_sweeper_recovered_executions",
            "Executions the sweeper re-dispatched (due retries, stalled runs).",
            registry=r,
        )
        # Scheduler
        self.schedule_fires = Counter(
            "chorus_scheduler_fires", "Schedule triggers fired.", ["namespace", "flow"], registry=r
        )
        self.schedule_lag = Histogram(
            "chorus_scheduler_lag_seconds",
            "Delay between a schedule's due time and its execution's creation.",
            buckets=_RUN_BUCKETS_S,
            registry=r,
        )
        # Realtime triggers (orchestrator.triggers.realtime): labels are bounded by the deployed flows' triggers.
        self.realtime_messages = Counter(
            "chorus_realtime_messages",
            "Queue messages a realtime trigger handled (started an execution, or a duplicate of one that had).",
            ["namespace", "flow", "trigger", "outcome"],
            registry=r,
        )
        self.realtime_lag = Gauge(
            "chorus_realtime_lag_messages",
            "Messages waiting in a realtime trigger's queue (undelivered plus unacknowledged).",
            ["namespace", "flow", "trigger"],
            multiprocess_mode="livemax",
            registry=r,
        )
        # LLM usage (the ai pool)
        self.llm_calls = Counter("chorus_llm_calls", "LLM calls made.", ["provider", "model", "outcome"], registry=r)
        self.llm_tokens = Counter(
            "chorus_llm_tokens", "LLM tokens used, prompt or completion.", ["provider", "model", "kind"], registry=r
        )
        self.llm_cost = Counter("chorus_llm_cost_usd", "LLM cost in US dollars.", ["provider", "model"], registry=r)
        self.llm_budget_checks = Counter(
            "chorus_llm_budget_checks",
            "LLM budget checks before a call: reserved (sent) or refused (not sent), by budget scope.",
            ["scope", "outcome"],
            registry=r,
        )
        # The same calls under OpenTelemetry's GenAI metric names (gen_ai.client.*), in Prometheus form.
        self.gen_ai_token_usage = Histogram(
            "gen_ai_client_token_usage",
            "Tokens used per model call (gen_ai.client.token.usage), by token type: input or output.",
            [*_GEN_AI_LABELS, "gen_ai_token_type"],
            buckets=_GEN_AI_TOKEN_BUCKETS,
            registry=r,
        )
        self.gen_ai_operation_duration = Histogram(
            "gen_ai_client_operation_duration_seconds",
            "Duration of a model call (gen_ai.client.operation.duration); error_type is empty when it succeeded.",
            [*_GEN_AI_LABELS, "error_type"],
            buckets=_GEN_AI_DURATION_BUCKETS_S,
            registry=r,
        )
        self.gen_ai_cost = Counter(
            "gen_ai_client_cost_usd",
            "Cost of model calls in US dollars from Chorus's price table (a Chorus addition to gen_ai.client.*).",
            _GEN_AI_LABELS,
            registry=r,
        )
        # The notification outbox (workers right after a task run's commit, the server's sweeper after a death)
        self.notifications = Counter(
            "chorus_notifications",
            "Notification sends from the outbox: sent, failed (given up) or retried, by task type.",
            ["kind", "outcome"],
            registry=r,
        )
        self.llm_calls_in_flight = Gauge(
            "chorus_llm_calls_in_flight",
            "Model calls sent and not yet answered (in-call retries and Retry-After waits included), by the pool "
            "of the task run making them: with queued and running task runs, the ai pools' work to scale on.",
            ["pool"],
            multiprocess_mode="livesum",
            registry=r,
        )
        self.llm_call_duration = Histogram(
            "chorus_llm_call_duration_seconds",
            "Latency of one LLM call.",
            ["provider", "model"],
            buckets=(*_HTTP_BUCKETS_S, 60, 120, 300),
            registry=r,
        )


@dataclass
class _Process:
    metrics: Metrics | None = None
    registry: CollectorRegistry | None = None  #: None in multiprocess mode (the files are the registry)
    lock: threading.Lock = field(default_factory=threading.Lock)


_process = _Process()


def multiprocess_dir() -> Path | None:
    """The multiprocess directory this process writes to, if it runs in multiprocess mode."""
    value = os.environ.get(MULTIPROC_ENV)
    return Path(value) if value else None


def prepare_multiprocess_dir(configured: Path | None, *, prefix: str = "chorus-metrics-") -> Path:
    """Create (or empty) a worker group's multiprocess directory and point prometheus-client at it.

    Called by an entry point before any metric exists: files left by a previous run would otherwise
    be summed into this one's counters.
    """
    if configured is None:
        path = Path(tempfile.mkdtemp(prefix=prefix))
    else:
        path = configured
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):
            stale.unlink()
    os.environ[MULTIPROC_ENV] = str(path)
    # prometheus-client picks its value class when first imported; pick again now the variable is set.
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
    return path


def remove_multiprocess_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def metrics() -> Metrics:
    """This process's metrics, created on first use (after the entry point chose the mode)."""
    with _process.lock:
        if _process.metrics is None:
            _process.registry = None if multiprocess_dir() else CollectorRegistry()
            _process.metrics = Metrics(_process.registry)
        return _process.metrics


def exposition_registry(extra: Sequence[Collector] = ()) -> CollectorRegistry:
    """A registry of this process's metrics (every process's in multiprocess mode) plus `extra`."""
    metrics()
    registry = CollectorRegistry()
    directory = multiprocess_dir()
    if directory is not None:
        MultiProcessCollector(registry, path=str(directory))  # type: ignore[no-untyped-call]
    else:
        assert _process.registry is not None
        registry.register(_process.registry)  # a registry is itself a collector of what it holds
    for collector in extra:
        registry.register(collector)
    return registry


def exposition(extra: Sequence[Collector] = ()) -> bytes:
    """The text exposition of this process's metrics plus `extra`."""
    return generate_latest(exposition_registry(extra))


def serve_metrics(settings: MetricsSettings) -> Any | None:
    """Serve `/metrics` on `settings.port` from a thread (a process without an HTTP server of its own:
    a worker group's main process, the scheduler). Returns the server to `shutdown()`, or None when the
    port is 0 or taken (logged; the process runs on without metrics)."""
    if settings.port == 0:
        return None
    try:
        server, _thread = start_http_server(settings.port, addr=settings.host, registry=exposition_registry())
    except OSError:
        logger.error("metrics port %s:%s is not available; serving no metrics", settings.host, settings.port)
        return None
    logger.info("serving metrics on http://%s:%s/metrics", settings.host, settings.port)
    return server


def record_llm_call(
    provider: str,
    model: str,
    *,
    outcome: str,
    prompt_tokens: int,
    completion_tokens: int,
    cost_usd: float,
    duration_s: float,
) -> None:
    """Count one LLM call (the ai pool calls this once per model call, successful or not)."""
    m = metrics()
    m.llm_calls.labels(provider, model, outcome).inc()
    m.llm_tokens.labels(provider, model, "prompt").inc(prompt_tokens)
    m.llm_tokens.labels(provider, model, "completion").inc(completion_tokens)
    m.llm_cost.labels(provider, model).inc(cost_usd)
    m.llm_call_duration.labels(provider, model).observe(duration_s)


def record_gen_ai_call(
    operation: str,
    provider: str,
    request_model: str,
    response_model: str,
    *,
    input_tokens: int | None,
    output_tokens: int | None,
    cost_usd: float,
    duration_s: float,
    error_type: str | None,
) -> None:
    """Record one model call in the `gen_ai_client_*` metrics (`provider` as the conventions name it).

    Token usage is recorded only when the provider reported it (None: a failed call), as the conventions ask.
    """
    m = metrics()
    labels = (operation, provider, request_model, response_model)
    for token_type, tokens in (("input", input_tokens), ("output", output_tokens)):
        if tokens is not None:
            m.gen_ai_token_usage.labels(*labels, token_type).observe(tokens)
    m.gen_ai_operation_duration.labels(*labels, error_type or "").observe(duration_s)
    m.gen_ai_cost.labels(*labels).inc(cost_usd)


def record_llm_budget_check(scope: str, *, reserved: bool) -> None:
    """Count one budget check before an LLM call (`scope`: execution or task_run)."""
    metrics().llm_budget_checks.labels(scope, "reserved" if reserved else "refused").inc()


def record_notification(kind: str, outcome: str) -> None:
    """Count one send of an outbox notification; `outcome` is sent, failed or retried."""
    metrics().notifications.labels(kind, outcome).inc()


def record_schedule_fire(namespace: str, flow: str, *, lag_s: float) -> None:
    """Count one schedule trigger firing `lag_s` seconds after its due time (the scheduler calls this)."""
    m = metrics()
    m.schedule_fires.labels(namespace, flow).inc()
    m.schedule_lag.observe(lag_s)


def record_realtime_message(namespace: str, flow: str, trigger: str, *, outcome: str) -> None:
    """Count one message a realtime trigger handled; `outcome` is started or duplicate."""
    metrics().realtime_messages.labels(namespace, flow, trigger, outcome).inc()


def set_realtime_lag(namespace: str, flow: str, trigger: str, *, lag: int) -> None:
    """The messages a realtime trigger's queue holds for it now."""
    metrics().realtime_lag.labels(namespace, flow, trigger).set(lag)
