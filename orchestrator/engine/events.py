"""Events between flows: the Publish task's outbox row, its delivery to Event triggers, and at-most-once firing.

A Publish task run writes its event in the transaction that ends it (`record_published`, called by the
engine), so an event exists exactly when its task run committed. Delivery runs after that commit (the
engine's after-commit callbacks) and again from the sweeper for events still undelivered, so a crash
between commit and delivery loses nothing. Each (event, flow, trigger) fires at most once: the receipt row
is written in the transaction that creates the execution (`start_once`), so redelivery and concurrent
deliverers on several servers find it taken.

Who hears an event is namespace RBAC: a flow hears events of its own namespace, and of another namespace
only when that namespace grants it `execution.read` (CHORUS_NAMESPACE_ACCESS), the use a Flow trigger needs
too: both see what another namespace's execution produced (here its payload and ids), so one grant says
both. A flow never hears its own events (that would loop, as a Flow trigger on itself would).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from orchestrator import store
from orchestrator.core.errors import ChorusError, ExpressionError
from orchestrator.core.expressions import is_true, render, render_value
from orchestrator.core.flow import Flow, TriggerSpec
from orchestrator.core.ids import new_id
from orchestrator.core.inputs import coerce_inputs
from orchestrator.core.namespace_access import Use
from orchestrator.core.states import State
from orchestrator.engine import checks, pending
from orchestrator.store import events as store_events
from orchestrator.store.database import Session, read_only, transaction
from orchestrator.store.events import PublishedEvent
from orchestrator.store.tables import ExecutionRow, FlowRevisionRow, TaskRunRow

if TYPE_CHECKING:
    from orchestrator.engine.facade import Engine

logger = logging.getLogger(__name__)

#: Undelivered events younger than this are left to their after-commit delivery, which is normally
#: under way; the sweeper takes the older ones (a process that died between commit and delivery).
REDELIVER_AFTER = timedelta(seconds=10)


def record_published(
    engine: Engine, session: Session, execution: ExecutionRow, row: TaskRunRow, outputs: dict[str, Any] | None
) -> None:
    """Write a Publish task run's event in the caller's transaction and deliver it once that commits."""
    outputs = outputs or {}
    event = PublishedEvent(
        id=new_id(),
        tenant=execution.tenant,
        name=str(outputs.get("event")),
        namespace=execution.namespace,
        flow_id=execution.flow_id,
        execution_id=execution.id,
        task_id=row.task_id,
        task_run_id=row.id,
        attempt=row.attempt,
        payload=outputs.get("payload"),
        created_at=store.transaction_now(session),  # the sweeper's redelivery reads the database's clock
        delivered_at=None,
    )
    if not store_events.insert_event(session, event):
        return  # this attempt already published (a redelivered message that re-ran an ended attempt)
    row.outputs = {**(row.outputs or {}), "eventId": event.id}
    store.append_audit(
        session, execution.id, actor=f"task:{execution.id}/{row.task_id}", action="event.published", subject=row.id,
        payload={"event_id": event.id, "event": event.name},
    )  # fmt: skip
    pending.after_commit(session, functools.partial(deliver, engine, event.id))


def event_variables(event: PublishedEvent) -> dict[str, Any]:
    """`trigger.*` of an execution an event started."""
    return {
        "event": event.name,
        "eventId": event.id,
        "payload": event.payload,
        "publisher": {
            "executionId": event.execution_id,
            "namespace": event.namespace,
            "flowId": event.flow_id,
            "taskId": event.task_id,
            "taskRunId": event.task_run_id,
        },
    }


def deliver(engine: Engine, event_id: str) -> list[str]:
    """Start every flow whose Event trigger hears this event (once each); return the new executions' ids.

    The event is marked delivered only when every subscriber was handled, so a failure leaves it to the sweeper.
    """
    try:
        with read_only(engine.sessions) as session:
            event = store_events.get_event(session, event_id)
            if event is None or event.delivered_at is not None:
                return []
            candidates = _candidates(session, event.tenant)
            session.expunge_all()
        started = []
        for flow_row, flow, trigger in _matching(engine, event, candidates):
            execution_id = _fire(engine, event, flow_row, flow, trigger)
            if execution_id is not None:
                started.append(execution_id)
        with transaction(engine.sessions) as session:
            store_events.mark_delivered(session, event_id, store.utcnow())
        return started
    except Exception:
        logger.exception("delivering event %s failed; the sweeper tries again", event_id)
        return []


def redeliver_pending(engine: Engine) -> int:
    """Deliver events committed but left undelivered (the sweeper's job); return how many were tried."""
    with read_only(engine.sessions) as session:
        before = store.db_now(session) - REDELIVER_AFTER  # `created_at` is by the database's clock
        ids = store_events.undelivered_events(session, engine.settings.tenant, before)
    for event_id in ids:
        deliver(engine, event_id)
    return len(ids)


def _candidates(session: Session, tenant: str) -> Sequence[FlowRevisionRow]:
    """Live flows that may declare an Event trigger (a textual pre-filter; the parsed flow decides)."""
    return store.live_flows_mentioning(session, tenant, "Event")


def _matching(
    engine: Engine, event: PublishedEvent, candidates: Sequence[FlowRevisionRow]
) -> list[tuple[FlowRevisionRow, Flow, TriggerSpec]]:
    found = []
    access = engine.settings.namespace_grants
    for flow_row in candidates:
        try:
            flow = engine.flow_of(flow_row)
        except ChorusError:
            continue
        if flow.disabled or (flow.namespace, flow.id) == (event.namespace, event.flow_id):
            continue
        if not access.allows(flow.namespace, event.namespace, Use.EXECUTION_READ):
            continue
        for trigger in flow.triggers:
            hears = trigger.type == "Event" and not trigger.disabled and trigger.properties.get("event") == event.name
            if hears and _when_holds(trigger, event):
                found.append((flow_row, flow, trigger))
    return found


def _when_holds(trigger: TriggerSpec, event: PublishedEvent) -> bool:
    """The trigger's `when` over `trigger.*` (the payload and publisher); a rendering error means no."""
    expression = trigger.properties.get("when")
    if expression is None:
        return True
    try:
        return is_true(render(str(expression), {"trigger": event_variables(event)}))
    except ExpressionError as e:
        logger.warning("Event trigger %s: `when` could not be rendered for event %s: %s", trigger.id, event.id, e)
        return False


def _fire(
    engine: Engine, event: PublishedEvent, flow_row: FlowRevisionRow, flow: Flow, trigger: TriggerSpec
) -> str | None:
    variables = event_variables(event)
    return start_once(engine, event.id, flow_row, flow, trigger, variables, audit={"event_id": event.id})


def start_once(
    engine: Engine,
    source_id: str,
    flow_row: FlowRevisionRow,
    flow: Flow,
    trigger: TriggerSpec,
    variables: dict[str, Any],
    *,
    audit: dict[str, Any],
) -> str | None:
    """Start `flow` for `source_id` through `trigger` unless that source already did; return the new execution.

    The receipt, the execution and the audit record commit together. The trigger's `inputs` are rendered
    against `trigger.*`; inputs that cannot be rendered make a FAILED execution, as a Flow trigger's do.
    """
    actor = f"trigger:{flow.namespace}.{flow.id}.{trigger.id}"
    raw = trigger.properties.get("inputs")
    inputs: dict[str, Any] = {}
    failure: str | None = None
    if isinstance(raw, dict):
        try:
            inputs = coerce_inputs(flow, render_value(raw, {"trigger": variables}))
        except ChorusError as e:
            failure = f"the {trigger.type} trigger's inputs could not be rendered: {e.message}"
    key = (flow.namespace, flow.id, trigger.id)
    try:
        with engine.transaction() as session:
            execution_id = new_id()
            tenant = engine.settings.tenant
            if not store_events.claim_receipt(session, tenant, source_id, key, execution_id, store.utcnow()):
                return None  # already fired for this source (a redelivery, or another server got there first)
            execution = engine.create_execution(
                session, flow_row, flow, inputs, [], actor=actor, execution_id=execution_id,
                trigger={"id": trigger.id, "type": trigger.type_name, "variables": variables},
            )  # fmt: skip
            if failure is not None:
                checks.fail_at_creation(session, execution, failure, actor=actor)
            store.append_audit(
                session, store.flow_chain_key(engine.settings.tenant, flow.namespace, flow.id), actor=actor,
                action="trigger.fired", subject=trigger.id, payload={"execution_id": execution_id, **audit},
            )  # fmt: skip
            running = State(execution.state) is State.RUNNING
    except ChorusError as e:
        logger.error("%s could not start %s.%s: %s", actor, flow.namespace, flow.id, e.message)
        return None
    if running:
        engine.dispatch(execution_id, actor=actor)
    return execution_id
