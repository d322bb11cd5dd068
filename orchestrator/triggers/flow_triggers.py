"""Flow triggers: when an execution changes state, start the flows whose Flow trigger accepts it.

`on_commit` is the engine reaction this package registers (see `orchestrator.triggers.wiring`): it runs
after the transaction that changed the execution's state has committed, so a started flow never sees an
uncommitted state. A failure here is logged and never undoes the change. As in Kestra (JdbcExecutor evaluates
Flow triggers on every state change), a trigger whose `states` name a live state (RUNNING, PAUSED, ...) starts
its flow on each such change; by default a trigger listens to the terminal states only, so only ends count.
As in Kestra, a trigger's `inputs` are rendered against the ended execution (its `outputs`,
`execution`, `flow`, `inputs`, `labels`) plus `trigger`; a trigger without `inputs` starts its flow
without input validation.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from orchestrator import store
from orchestrator.core.errors import ChorusError
from orchestrator.core.expressions import render_value
from orchestrator.core.flow import Flow, TriggerSpec
from orchestrator.core.flow_conditions import (
    EndedExecution,
    flow_trigger_matches,
    flow_trigger_variables,
    is_windowed,
    listened_states,
)
from orchestrator.core.inputs import coerce_inputs
from orchestrator.core.namespace_access import Use
from orchestrator.core.states import State
from orchestrator.core.trigger_labels import execution_labels, flow_trigger_labels
from orchestrator.engine import checks
from orchestrator.engine.variables import base_variables
from orchestrator.store import flow_windows
from orchestrator.store import triggers as store_triggers
from orchestrator.store.database import Session, read_only
from orchestrator.store.tables import FlowRevisionRow

if TYPE_CHECKING:
    from orchestrator.engine import Engine
    from orchestrator.engine.reactions import Committed

logger = logging.getLogger(__name__)


def on_commit(engine: Engine, committed: Committed) -> None:
    """The engine reaction: every state change the committed transaction made may start flows."""
    states_by_execution: dict[str, list[str]] = {}
    for execution_id, state in committed.changed_executions():
        states_by_execution.setdefault(execution_id, []).append(state)
    for execution_id, states in states_by_execution.items():
        on_execution_changed(engine, execution_id, states, flows_version=committed.flows_version)


def on_execution_ended(engine: Engine, execution_id: str, *, flows_version: tuple[Any, ...] | None = None) -> list[str]:
    """Start every flow whose Flow trigger matches the execution in its current (ended) state."""
    return on_execution_changed(engine, execution_id, None, flows_version=flows_version)


def on_execution_changed(
    engine: Engine,
    execution_id: str,
    states: Sequence[str] | None,
    *,
    flows_version: tuple[Any, ...] | None = None,
) -> list[str]:
    """Start every flow whose Flow trigger matches the execution in each of `states` (the states it just
    reached, in order; None: its current state); return the new executions' ids.

    `flows_version`: the flows' version as the transaction that changed the execution read it; when no
    cached candidate for it listens to any of `states`, nothing can match and no transaction is opened.
    """
    if flows_version is not None and not _may_listen(engine, flows_version, states):
        return []
    try:
        with read_only(engine.sessions) as session:
            candidates, listened = _candidates(engine, session)
            execution = store.get_execution(session, execution_id) if candidates else None
            if execution is None:
                return []
            reached = [s for s in (states if states is not None else [execution.state]) if s in listened]
            if not reached:
                return []
            retried = (
                # Read only when some trigger asks (HasRetryAttempt, Kestra 2's hasRetryAttempt): a read of task runs.
                _retried_attempts(store.task_runs_of(session, execution.id))
                if any("etryAttempt" in row.source for row in candidates)
                else ()
            )
            found: list[tuple[EndedExecution, FlowRevisionRow, Flow, TriggerSpec]] = []
            for state in reached:
                ended = EndedExecution(
                    id=execution.id,
                    namespace=execution.namespace,
                    flow_id=execution.flow_id,
                    flow_revision=execution.flow_revision,
                    state=state,
                    labels={label["key"]: label["value"] for label in execution.labels},
                    # A live execution has no flow outputs yet (Kestra computes them at the end).
                    outputs=(execution.outputs or {}) if State(state).is_terminal else {},
                    retried_attempts=retried,
                )
                found += [(ended, *match) for match in _matching(engine, ended, candidates)]
            if not found:
                return []
            source_row = store.latest_flow(
                session, execution.tenant, execution.namespace, execution.flow_id, revision=execution.flow_revision
            )
            source = base_variables(
                execution, engine.flow_of(source_row), store.task_runs_of(session, execution.id)
            ) if source_row is not None else {}  # fmt: skip
        started = (_start(engine, ended, source, row, flow, trigger) for ended, row, flow, trigger in found)
        return [e for e in started if e is not None]
    except Exception:
        logger.exception("flow triggers failed for %s", execution_id, extra={"execution_id": execution_id})
        return []


#: Per (database, tenant): the flows' version, the flows that may declare a Flow trigger, and every execution
#: state one of their Flow triggers listens to.
_candidates_cache: dict[tuple[str, str], tuple[tuple[Any, ...], Sequence[FlowRevisionRow], frozenset[str]]] = {}
_candidates_lock = threading.Lock()


def _candidates(engine: Engine, session: Session) -> tuple[Sequence[FlowRevisionRow], frozenset[str]]:
    """The flows that may declare a Flow trigger and the states their triggers listen to, read again only when a
    flow changed (every state change asks; the flows' version is the listener's token or one small aggregate,
    their sources a scan of every live flow's text). The version is taken before the rows: a change after it
    makes the next one differ."""
    tenant = engine.settings.tenant
    version = engine.flows_version(session) if engine.flows_version else store_triggers.flows_version(session, tenant)
    key = (engine.settings.database_url, tenant)
    with _candidates_lock:
        cached = _candidates_cache.get(key)
    if cached is not None and cached[0] == version:
        return cached[1], cached[2]
    rows = store_triggers.flows_with_flow_triggers(session, tenant)
    session.expunge_all()  # detached with their loaded columns: kept beyond this session
    listened = _listened_states(engine, rows)
    with _candidates_lock:
        _candidates_cache[key] = (version, rows, listened)
    return rows, listened


def _listened_states(engine: Engine, rows: Sequence[FlowRevisionRow]) -> frozenset[str]:
    states: set[str] = set()
    for row in rows:
        try:
            flow = engine.flow_of(row)
        except ChorusError:
            continue
        for trigger in flow.triggers:
            if trigger.type == "Flow" and not trigger.disabled:
                states |= listened_states(trigger)
    return frozenset(states)


def _may_listen(engine: Engine, version: tuple[Any, ...], states: Sequence[str] | None) -> bool:
    """False when the candidates cached for `version` are known to listen to none of `states`."""
    with _candidates_lock:
        cached = _candidates_cache.get((engine.settings.database_url, engine.settings.tenant))
    if cached is None or cached[0] != version:
        return True
    if states is None:
        return bool(cached[1])
    return any(state in cached[2] for state in states)


def _retried_attempts(runs: Sequence[Any]) -> tuple[str, ...]:
    """The attempt states of the task runs attempted more than once (Kestra's HasRetryAttempt reads those)."""
    return tuple(
        str(attempt.get("state", {}).get("current"))
        for run in runs
        if len(run.attempts or []) > 1
        for attempt in run.attempts
        if isinstance(attempt, dict)
    )


def _matching(
    engine: Engine, ended: EndedExecution, candidates: Sequence[FlowRevisionRow]
) -> list[tuple[FlowRevisionRow, Flow, TriggerSpec]]:
    found = []
    access = engine.settings.namespace_grants
    for flow_row in candidates:
        try:
            flow = engine.flow_of(flow_row)
        except ChorusError:
            continue
        if flow.disabled or (flow.namespace, flow.id) == (ended.namespace, ended.flow_id):
            continue  # a flow never triggers itself: that would loop forever
        if not access.allows(flow.namespace, ended.namespace, Use.EXECUTION_READ):
            continue  # its trigger would see the execution's outputs, labels and file URIs
        for trigger in flow.triggers:
            seen = replace(ended, triggered_flow=(flow.namespace, flow.id))
            if trigger.type == "Flow" and not trigger.disabled and flow_trigger_matches(trigger, seen):
                found.append((flow_row, flow, trigger))
    return found


def _start(
    engine: Engine,
    ended: EndedExecution,
    source: dict[str, Any],
    flow_row: FlowRevisionRow,
    flow: Flow,
    trigger: TriggerSpec,
) -> str | None:
    variables = flow_trigger_variables(ended)
    variables["executionLabels"] = execution_labels(ended.labels)
    if trigger.properties.get("dependsOn") is not None:
        # Kestra 2 scopes the upstream outputs by flow id; the unscoped form stays as a shorthand.
        variables["outputs"] = {**variables["outputs"], ended.flow_id: dict(ended.outputs)}
    actor = f"trigger:{flow.namespace}.{flow.id}.{trigger.id}"
    raw = trigger.properties.get("inputs")
    try:
        inputs: dict[str, Any] = {}
        failure: str | None = None
        if isinstance(raw, dict):
            try:
                inputs = coerce_inputs(flow, render_value(raw, {**source, "trigger": variables}))
            except ChorusError as e:
                # Kestra 2: inputs that cannot be rendered make a FAILED execution, not a dropped event.
                failure = f"the Flow trigger's inputs could not be rendered: {e.message}"
        with engine.transaction() as session:
            if is_windowed(trigger) and not flow_windows.record(
                session, engine.settings.tenant, flow, trigger, ended, store.utcnow()
            ):
                return None  # counted in the trigger's window, which is not complete yet
            labels = flow_trigger_labels(
                trigger.properties.get("labels"), ended.labels,
                lambda value: render_value(value, {**source, "trigger": variables}),
            )  # fmt: skip
            execution = engine.create_execution(
                session, flow_row, flow, inputs, labels, actor=actor,
                trigger={"id": trigger.id, "type": trigger.type_name, "variables": variables},
            )  # fmt: skip
            if failure is not None:
                checks.fail_at_creation(session, execution, failure, actor=actor)
            store.append_audit(
                session, store.flow_chain_key(engine.settings.tenant, flow.namespace, flow.id), actor=actor,
                action="trigger.fired", subject=trigger.id, payload={"execution_id": execution.id, "source": ended.id},
            )  # fmt: skip
    except ChorusError as e:
        logger.error("%s could not start %s.%s: %s", actor, flow.namespace, flow.id, e.message)
        return None
    if failure is None:
        engine.dispatch(execution.id, actor=actor)
    return execution.id
