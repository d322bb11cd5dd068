"""Engine hooks that turn committed ends of executions and task runs into OpenTelemetry spans.

An execution's end emits its `invoke_workflow <flow>` span (the trace's root; after a restart, a span below the
root for the restarted run) and a task run's end its
`task <id>` span (`invoke_agent <id>` for an AIAgent), each from its creation to its end, with the hash of the
audit event that recorded the end. Any process with an Engine does this (the API's local drive, workers,
the sweeper); ids are derived, so no process needs another's context (see observability/tracing.py).
"""

from __future__ import annotations

from collections import OrderedDict

from orchestrator.core.states import State
from orchestrator.hooks import EngineHooks, Transition
from orchestrator.observability import tracing

_REMEMBERED_TYPES = 10_000
_FAILED = {State.FAILED, State.KILLED}
#: Kestra's AIAgent type names end with this: its task run is the agent's invocation.
_AGENT_SUFFIX = "AIAgent"


class TracingHooks(EngineHooks):
    """Emits the execution and task-run spans of the engine's committed transitions (no-op when tracing is off)."""

    def __init__(self) -> None:
        # A task run's end is often recorded without its type (finish); the claim in this process knew it.
        self._types: OrderedDict[str, str] = OrderedDict()

    def _task_type(self, t: Transition) -> str | None:
        if t.task_type:
            self._types[t.subject_id] = t.task_type
            self._types.move_to_end(t.subject_id)
            if len(self._types) > _REMEMBERED_TYPES:
                self._types.popitem(last=False)
            return t.task_type
        return self._types.pop(t.subject_id, None) if State(t.state).is_terminal else self._types.get(t.subject_id)

    def after_transition(self, transition: Transition) -> None:
        if not tracing.tracing_on():
            return
        t = transition
        task_type = self._task_type(t) if t.kind == "task_run" else None
        state = State(t.state)
        if not state.is_terminal or t.previous == t.state:
            return
        attributes: dict[str, tracing.AttributeValue] = {
            "chorus.execution.id": t.execution_id,
            "chorus.namespace": t.namespace,
            "chorus.flow.id": t.flow_id,
            "chorus.state": t.state,
        }
        if t.audit_hash:
            attributes[tracing.AUDIT_HASH] = t.audit_hash
        error = t.state if state in _FAILED else None
        if t.kind == "execution":
            attributes.update({"gen_ai.operation.name": "invoke_workflow", "gen_ai.workflow.name": t.flow_id})
            # A subflow execution is a trace of its own, linked to the Subflow task run that started it.
            links: tuple[tuple[str, int], ...] = ()
            if t.parent_execution_id is not None and t.parent_id is not None:
                links = ((t.parent_execution_id, tracing.task_run_span_id(t.parent_id)),)
            root = tracing.execution_span_id(t.execution_id)
            span_id, parent_span_id, start = root, None, t.started_at
            if t.restarts:
                # The first end emitted the root; a restarted run ends once more and is a span of its own
                # below it, from the restart on: the same root id twice would be a duplicate span.
                attributes["chorus.execution.restarts"] = t.restarts
                span_id = tracing.restarted_run_span_id(t.execution_id, t.restarts)
                parent_span_id, start, links = root, t.attempt_started_at or t.started_at, ()
            tracing.emit(
                tracing.SpanRecord(
                    name=f"invoke_workflow {t.flow_id}",
                    execution_id=t.execution_id,
                    start=start,
                    end=t.at,
                    attributes=attributes,
                    span_id=span_id,
                    parent_span_id=parent_span_id,
                    error=error,
                    links=links,
                )
            )
            return
        task_id = t.task_id or ""
        attributes.update({"chorus.task.id": task_id, "chorus.task_run.id": t.subject_id})
        if t.attempt is not None:
            attributes["chorus.task_run.attempt"] = t.attempt
        name = f"task {task_id}"
        if task_type:
            attributes["chorus.task.type"] = task_type
            if task_type.endswith(_AGENT_SUFFIX):
                name = f"invoke_agent {task_id}"
                attributes.update({"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": task_id})
        parent = tracing.task_run_span_id(t.parent_id) if t.parent_id else tracing.execution_span_id(t.execution_id)
        tracing.emit(
            tracing.SpanRecord(
                name=name,
                execution_id=t.execution_id,
                start=t.started_at,
                end=t.at,
                attributes=attributes,
                span_id=tracing.task_run_span_id(t.subject_id),
                parent_span_id=parent,
                error=error,
            )
        )
