"""Tracing in one process: off by default, derived ids, GenAI attributes, a tracing fault never reaching the run."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from orchestrator.core.transition import Transition
from orchestrator.engine.tracing_hooks import TracingHooks
from orchestrator.observability import gen_ai, tracing

_OTEL_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_SDK_DISABLED")


@pytest.fixture
def no_otel_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*_OTEL_VARIABLES, "CHORUS_TRACING_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def exported(no_otel_environment: None) -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    assert tracing.setup_tracing("test", exporter=exporter)
    yield exporter
    tracing.shutdown_tracing()


def test_tracing_is_off_without_an_endpoint_and_emitting_then_does_nothing(no_otel_environment: None) -> None:
    assert tracing.TracingSettings().enabled is False
    assert tracing.setup_tracing("test") is False
    assert tracing.tracing_on() is False
    now = datetime.now(UTC)
    tracing.emit(tracing.SpanRecord("x", "e1", now, now, {}))  # no provider: returns at once


@pytest.mark.parametrize(
    ("variable", "value", "enabled"),
    [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318", True),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://collector:4318/v1/traces", True),
        ("CHORUS_TRACING_ENDPOINT", "http://collector:4318", True),
    ],
)
def test_an_otlp_endpoint_turns_tracing_on_unless_the_sdk_is_disabled(
    no_otel_environment: None, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, enabled: bool
) -> None:
    monkeypatch.setenv(variable, value)
    assert tracing.TracingSettings().enabled is enabled
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert tracing.TracingSettings().enabled is False


def test_ids_are_derived_from_the_execution_and_task_run_ids_alone() -> None:
    assert tracing.trace_id_of("exec-1") == tracing.trace_id_of("exec-1") != tracing.trace_id_of("exec-2")
    assert tracing.trace_id_of("exec-1").bit_length() > 64  # 128-bit trace ids
    assert tracing.execution_span_id("exec-1") != tracing.task_run_span_id("exec-1")
    assert 0 < tracing.task_run_span_id("tr-1") < 2**64


def _transition(kind: str, subject: str, state: str, **extra: object) -> Transition:
    at = datetime(2026, 1, 1, 12, 0, 5, tzinfo=UTC)
    values: dict[str, object] = {
        "kind": kind, "subject_id": subject, "execution_id": "exec-1", "namespace": "company.team",
        "flow_id": "demo", "task_id": None if kind == "execution" else subject, "task_type": None,
        "previous": "RUNNING", "state": state, "at": at, "started_at": at - timedelta(seconds=5),
        "audit_hash": f"hash-of-{subject}",
    }  # fmt: skip
    return Transition(**{**values, **extra})  # type: ignore[arg-type]


def test_ends_of_an_execution_and_its_task_runs_become_a_tree_with_their_audit_hashes(
    exported: InMemorySpanExporter,
) -> None:
    hooks = TracingHooks()
    hooks.after_transition(_transition("task_run", "agent", "RUNNING", task_type="io.kestra.plugin.ai.agent.AIAgent"))
    hooks.after_transition(_transition("task_run", "agent", "SUCCESS"))  # type remembered from the claim
    hooks.after_transition(_transition("task_run", "child", "FAILED", parent_id="agent"))
    hooks.after_transition(_transition("execution", "exec-1", "FAILED"))

    spans = {s.name: s for s in exported.get_finished_spans()}
    assert set(spans) == {"invoke_agent agent", "task child", "invoke_workflow demo"}
    root, agent, child = spans["invoke_workflow demo"], spans["invoke_agent agent"], spans["task child"]
    assert {s.context.trace_id for s in spans.values()} == {tracing.trace_id_of("exec-1")}
    assert root.parent is None and root.context.span_id == tracing.execution_span_id("exec-1")
    assert agent.parent is not None and agent.parent.span_id == root.context.span_id
    assert child.parent is not None and child.parent.span_id == tracing.task_run_span_id("agent")
    assert agent.attributes is not None and agent.attributes["gen_ai.operation.name"] == "invoke_agent"
    assert child.attributes is not None and child.attributes["chorus.audit.hash"] == "hash-of-child"
    assert child.status.status_code is StatusCode.ERROR and root.status.status_code is StatusCode.ERROR
    assert root.end_time is not None and root.start_time is not None
    assert root.end_time - root.start_time == 5_000_000_000


def test_a_subflow_execution_is_its_own_trace_linked_to_the_subflow_task_run_that_started_it(
    exported: InMemorySpanExporter,
) -> None:
    TracingHooks().after_transition(
        _transition(
            "execution",
            "child",
            "SUCCESS",
            execution_id="child",
            parent_execution_id="exec-1",
            parent_id="call-subflow",
        )
    )

    [span] = exported.get_finished_spans()
    assert span.context.trace_id == tracing.trace_id_of("child") != tracing.trace_id_of("exec-1")
    assert span.context.span_id == tracing.execution_span_id("child")
    [link] = span.links
    assert (link.context.trace_id, link.context.span_id) == (
        tracing.trace_id_of("exec-1"),
        tracing.task_run_span_id("call-subflow"),
    )


def test_a_restarted_execution_ends_in_a_span_below_the_root_from_its_restart_on(
    exported: InMemorySpanExporter,
) -> None:
    hooks = TracingHooks()
    first = _transition("execution", "exec-1", "FAILED")
    restarted_at = first.at + timedelta(minutes=1)
    hooks.after_transition(first)
    for n in (1, 2):
        at = restarted_at + timedelta(minutes=n)
        hooks.after_transition(
            _transition(
                "execution", "exec-1", "SUCCESS", restarts=n, attempt_started_at=at, at=at + timedelta(seconds=2)
            )
        )

    root, *runs = exported.get_finished_spans()
    root_id = tracing.execution_span_id("exec-1")
    assert root.context.span_id == root_id and root.parent is None
    assert [s.context.span_id for s in runs] == [tracing.restarted_run_span_id("exec-1", n) for n in (1, 2)]
    assert root_id not in {s.context.span_id for s in runs}  # the root is emitted once, by the first end
    assert all(s.parent is not None and s.parent.span_id == root_id for s in runs)
    assert [s.attributes["chorus.execution.restarts"] for s in runs if s.attributes] == [1, 2]
    assert [(s.end_time or 0) - (s.start_time or 0) for s in runs] == [2_000_000_000] * 2  # from its restart on


def test_a_failed_model_call_is_an_error_span_without_token_usage(exported: InMemorySpanExporter) -> None:
    gen_ai.chat_call(
        execution_id="exec-1", task_run_id="tr-1", attempt=2, provider="mistral",
        request={"model": "small", "max_tokens": 5},
        response=None, tokens_in=0, tokens_out=0, cost_usd=0.0, latency_ms=120.0, finish_reason=None,
        error="LLM call failed with HTTP 500: mistral (https://api.mistral.ai/v1) model small: boom",
        audit_hash="h1", call_id=7,
    )  # fmt: skip

    [span] = exported.get_finished_spans()
    assert span.name == "chat small" and span.kind is SpanKind.CLIENT
    assert span.parent is not None and span.parent.span_id == tracing.task_run_span_id("tr-1")
    assert span.attributes is not None
    assert span.attributes["gen_ai.provider.name"] == "mistral_ai"
    assert span.attributes["gen_ai.request.max_tokens"] == 5
    assert span.attributes["error.type"] == "LLM call failed with HTTP 500"
    assert span.attributes["chorus.audit.hash"] == "h1"
    assert span.attributes["chorus.task_run.attempt"] == 2
    assert "gen_ai.response.model" not in span.attributes
    assert span.status.status_code is StatusCode.ERROR


def test_a_span_that_cannot_be_built_is_logged_and_never_raised(
    exported: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    now = datetime.now(UTC)
    tracing.emit(tracing.SpanRecord("bad", "exec-1", None, now, {}))  # type: ignore[arg-type]

    assert exported.get_finished_spans() == ()
    assert "could not emit span bad of execution exec-1" in caplog.text
