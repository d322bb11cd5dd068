"""MetricsHooks: committed transitions become execution, task-run and audit metrics with bounded labels."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prometheus_client import CollectorRegistry

from orchestrator.engine.metrics_hooks import MetricsHooks, pool_of
from orchestrator.hooks import Transition
from orchestrator.observability.metrics import Metrics

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def transition(
    kind: str, previous: str | None, state: str, *, task_type: str | None = None, after_s: float = 0
) -> Transition:
    return Transition(
        kind=kind,
        subject_id="tr1" if kind == "task_run" else "ex1",
        execution_id="ex1",
        namespace="company.team",
        flow_id="hello",
        task_id="t" if kind == "task_run" else None,
        task_type=task_type,
        previous=previous,
        state=state,
        at=T0 + timedelta(seconds=after_s),
        started_at=T0,
    )


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def hooks() -> tuple[MetricsHooks, CollectorRegistry]:
    registry = CollectorRegistry()
    return MetricsHooks(Metrics(registry)), registry


def test_an_execution_created_counts_as_started_and_a_final_state_as_ended_with_its_duration() -> None:
    h, registry = hooks()

    h.after_transition(transition("execution", None, "CREATED"))
    h.after_transition(transition("execution", "CREATED", "RUNNING"))
    h.after_transition(transition("execution", "RUNNING", "FAILED", after_s=2.5))

    labels = {"namespace": "company.team", "flow": "hello"}
    assert sample(registry, "chorus_executions_started_total", **labels) == 1
    assert sample(registry, "chorus_executions_ended_total", **labels, state="FAILED") == 1
    assert sample(registry, "chorus_execution_duration_seconds_sum", **labels) == 2.5
    assert sample(registry, "chorus_audit_events_written_total", kind="execution") == 3


def test_a_task_run_final_state_is_counted_by_type_and_pool_even_when_the_transition_lacks_the_type() -> None:
    h, registry = hooks()

    h.after_transition(transition("task_run", None, "RUNNING", task_type="Log"))
    h.after_transition(transition("task_run", "RUNNING", "SUCCESS", after_s=0.2))

    labels = {"task_type": "Log", "pool": "control"}
    assert sample(registry, "chorus_task_runs_ended_total", **labels, state="SUCCESS") == 1
    assert sample(registry, "chorus_task_run_duration_seconds_count", **labels) == 1


def test_a_retrying_attempt_counts_as_a_retry_not_as_an_end() -> None:
    h, registry = hooks()

    h.after_transition(transition("task_run", "RUNNING", "RETRYING", task_type="Fail"))

    assert sample(registry, "chorus_task_run_retries_total", task_type="Fail", pool="control") == 1
    assert sample(registry, "chorus_task_runs_ended_total", task_type="Fail", pool="control", state="RETRYING") == 0


def test_an_unknown_task_type_gets_the_bounded_label_unknown() -> None:
    assert pool_of("io.example.NotATask") == "unknown"
    assert pool_of(None) == "unknown"
