"""Engine hooks that turn committed transitions into execution, task-run and audit metrics."""

from __future__ import annotations

from collections import OrderedDict

from orchestrator.core.states import State
from orchestrator.core.tasktypes import CATALOGUE
from orchestrator.hooks import EngineHooks, Transition
from orchestrator.observability.metrics import Metrics

UNKNOWN = "unknown"
_REMEMBERED_TYPES = 10_000


def pool_of(task_type: str | None) -> str:
    """The pool a task type runs on by default (a bounded label even for types the catalogue lacks)."""
    spec = CATALOGUE.get(task_type) if task_type else None
    return str(spec.pool) if spec is not None else UNKNOWN


class MetricsHooks(EngineHooks):
    """Counts executions and task runs from the engine's committed transitions (any process with an Engine)."""

    def __init__(self, metrics: Metrics) -> None:
        self._m = metrics
        # Some engine operations (finish) do not know the task type; the claim that created the task
        # run in this process did, so remember it per task run (bounded, oldest forgotten first).
        self._types: OrderedDict[str, str] = OrderedDict()

    def _task_type(self, t: Transition) -> str:
        if t.task_type:
            self._types[t.subject_id] = t.task_type
            self._types.move_to_end(t.subject_id)
            if len(self._types) > _REMEMBERED_TYPES:
                self._types.popitem(last=False)
            return t.task_type
        return self._types.get(t.subject_id, UNKNOWN)

    def after_transition(self, transition: Transition) -> None:
        m, t = self._m, transition
        # record_transition and the create_* functions write exactly one audit event per transition.
        m.audit_events.labels(t.kind).inc()
        state = State(t.state)
        if t.kind == "execution":
            if t.previous is None:
                m.executions_started.labels(t.namespace, t.flow_id).inc()
            elif state.is_terminal:
                m.executions_ended.labels(t.namespace, t.flow_id, t.state).inc()
                m.execution_duration.labels(t.namespace, t.flow_id).observe(_seconds(t))
            return
        task_type = self._task_type(t)
        pool = pool_of(task_type)
        if state is State.RETRYING:
            m.task_run_retries.labels(task_type, pool).inc()
        elif state.is_terminal:
            m.task_runs_ended.labels(task_type, pool, t.state).inc()
            m.task_run_duration.labels(task_type, pool).observe(_seconds(t))


def _seconds(t: Transition) -> float:
    return max((t.at - t.started_at).total_seconds(), 0.0)
