"""OpenTelemetry traces of executions, task runs, model calls and agent tool calls (GenAI semantic conventions).

Off unless an OTLP endpoint is configured (`CHORUS_TRACING_ENDPOINT`, or the SDK's own
`OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`; `OTEL_SDK_DISABLED=true` wins): with
nothing configured no provider exists and every `emit_*` returns at once.

Why trace ids are derived from the execution id rather than carried in Celery headers: an execution's work
reaches workers by many roads that carry no caller context (the sweeper's re-dispatch after a lost message,
a Flower re-apply, `chorus retry`, a join sent from another worker, the API's local drive), and messages
carry only coordinates by design. So every process computes the same ids from what it already knows: the
trace id from the execution id, the `invoke_workflow` span id from the execution id (a restarted run's from the
execution id and its restart number), a task run's span id from its task run id. A span is emitted, with its real
start and end times, by whichever process records its end; its parent may be emitted later or by another process,
and the tree still assembles in the backend.
"""

from __future__ import annotations

import contextvars
import hashlib
import logging
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

logger = logging.getLogger(__name__)

AttributeValue = str | bool | int | float | Sequence[str]

#: The attribute that ties a span to the audit event recording the same fact (`audit_events.hash`).
AUDIT_HASH = "chorus.audit.hash"


class TracingSettings(BaseSettings):
    """Where traces go (`CHORUS_TRACING_*`); the standard `OTEL_*` variables are honoured too."""

    model_config = SettingsConfigDict(env_prefix="CHORUS_TRACING_", extra="ignore", frozen=True)

    endpoint: str | None = Field(
        default=None,
        description="OTLP/HTTP base URL of a collector (e.g. http://otel-collector:4318); traces go to "
        "<endpoint>/v1/traces. Unset: OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT decide, and without either tracing is off.",
    )
    service_name: str | None = Field(
        default=None,
        description="`service.name` of this process's spans (default: OTEL_SERVICE_NAME, else chorus-<role>).",
    )

    @property
    def enabled(self) -> bool:
        if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
            return False
        return bool(
            self.endpoint
            or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
            or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        )


# ---- deterministic ids -------------------------------------------------------------------------


def _digest(kind: str, key: str, bits: int) -> int:
    value = int.from_bytes(hashlib.sha256(f"chorus:{kind}:{key}".encode()).digest()[: bits // 8], "big")
    return value or 1  # zero is the invalid id in OpenTelemetry


def trace_id_of(execution_id: str) -> int:
    """The trace of an execution: every span about it, from any process, carries this id."""
    return _digest("trace", execution_id, 128)


def execution_span_id(execution_id: str) -> int:
    """The `invoke_workflow` span of an execution, the root of its trace."""
    return _digest("execution", execution_id, 64)


def restarted_run_span_id(execution_id: str, restarts: int) -> int:
    """The span of an execution's run after its n-th restart: a child of the root, which its first end emitted
    (a second root with the root's id would be a duplicate span to any backend)."""
    return _digest("execution_restart", f"{execution_id}/{restarts}", 64)


def task_run_span_id(task_run_id: str) -> int:
    """The span of a task run (all its attempts); model calls and tool calls of the run hang below it."""
    return _digest("task_run", task_run_id, 64)


def tool_call_span_id(task_run_id: str, call_id: str) -> int:
    """The `execute_tool` span of an agent's tool call (stable when a resumed attempt re-emits it)."""
    return _digest("tool_call", f"{task_run_id}/{call_id}", 64)


#: Set around `start_span` so the provider's id generator hands out the derived ids instead of random ones.
_forced_ids: contextvars.ContextVar[tuple[int, int | None] | None] = contextvars.ContextVar(
    "chorus_forced_span_ids", default=None
)


class _DerivedIds(RandomIdGenerator):
    """Random ids, except while `_forced_ids` names the trace and span id a span must have."""

    def generate_span_id(self) -> int:
        forced = _forced_ids.get()
        return forced[1] if forced is not None and forced[1] is not None else super().generate_span_id()

    def generate_trace_id(self) -> int:
        forced = _forced_ids.get()
        return forced[0] if forced is not None else super().generate_trace_id()


# ---- the process's provider --------------------------------------------------------------------


@dataclass
class _Process:
    provider: TracerProvider | None = None
    tracer: trace.Tracer | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


_process = _Process()


def setup_tracing(role: str, settings: TracingSettings | None = None, *, exporter: SpanExporter | None = None) -> bool:
    """Create this process's tracer provider when tracing is on (or `exporter` is given: tests); True if on.

    Called by an entry point; a prefork worker calls it in each pool process after fork, because the batch
    processor's export thread does not survive a fork.
    """
    settings = settings or TracingSettings()
    if exporter is None and not settings.enabled:
        return False
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        endpoint = f"{settings.endpoint.rstrip('/')}/v1/traces" if settings.endpoint else None
        exporter = OTLPSpanExporter(endpoint=endpoint)
        processor: Any = BatchSpanProcessor(exporter)
    else:
        processor = SimpleSpanProcessor(exporter)
    name = settings.service_name or os.environ.get("OTEL_SERVICE_NAME") or f"chorus-{role}"
    provider = TracerProvider(resource=Resource.create({"service.name": name}), id_generator=_DerivedIds())
    provider.add_span_processor(processor)
    with _process.lock:
        previous, _process.provider = _process.provider, provider
        _process.tracer = provider.get_tracer("chorus")
    if previous is not None:
        previous.shutdown()
    logger.info("tracing on: spans of %s go to %s", name, type(exporter).__name__)
    return True


def shutdown_tracing() -> None:
    """Flush and stop this process's provider (spans still queued are exported first)."""
    with _process.lock:
        provider, _process.provider, _process.tracer = _process.provider, None, None
    if provider is not None:
        provider.shutdown()


def tracing_on() -> bool:
    return _process.tracer is not None


# ---- emitting a finished span ------------------------------------------------------------------


@dataclass(frozen=True)
class SpanRecord:
    """A span already over: who it is, where it hangs, when it ran, what it says."""

    name: str
    execution_id: str
    start: datetime
    end: datetime
    attributes: Mapping[str, AttributeValue]
    span_id: int | None = None  #: None: a random id (a span nobody else refers to)
    parent_span_id: int | None = None  #: None: the root of the execution's trace
    kind: SpanKind = SpanKind.INTERNAL
    error: str | None = None  #: the error's type or message: the span's status is ERROR
    links: tuple[tuple[str, int], ...] = ()  #: (execution id, span id) of spans this one relates to, not its parent


def _ns(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000_000)


def _context_of(trace_id: int, span_id: int) -> SpanContext:
    return SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))


def emit(record: SpanRecord) -> None:
    """Export one finished span in its execution's trace (nothing when tracing is off). Never raises."""
    tracer = _process.tracer
    if tracer is None:
        return
    trace_id = trace_id_of(record.execution_id)
    parent = (
        Context()  # an empty context: the root, never whatever span is ambient in this thread
        if record.parent_span_id is None
        else trace.set_span_in_context(NonRecordingSpan(_context_of(trace_id, record.parent_span_id)), Context())
    )
    links = [trace.Link(_context_of(trace_id_of(execution), span_id)) for execution, span_id in record.links]
    attributes = {key: value for key, value in record.attributes.items() if value is not None}
    try:
        token = _forced_ids.set((trace_id, record.span_id))
        try:
            span = tracer.start_span(
                record.name,
                context=parent,
                kind=record.kind,
                attributes=attributes,
                links=links,
                start_time=_ns(record.start),
            )
        finally:
            _forced_ids.reset(token)
        if record.error is not None:
            span.set_status(Status(StatusCode.ERROR, record.error))
        span.end(end_time=max(_ns(record.end), _ns(record.start)))
    except Exception:  # a tracing fault must never fail the run it describes
        logger.exception("could not emit span %s of execution %s", record.name, record.execution_id)
