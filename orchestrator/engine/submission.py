"""Starting executions: submit, create (labels, inputs, concurrency admission), scheduled starts, webhooks."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from orchestrator import store
from orchestrator.core import kestra2
from orchestrator.core.errors import ChorusError, Conflict, ExpressionError, LabelsInvalid, NotFound, WebhookDeclined
from orchestrator.core.expressions import has_expression, render
from orchestrator.core.flow import Flow
from orchestrator.core.ids import new_id
from orchestrator.core.inputs import coerce_inputs
from orchestrator.core.plan import (
    PlanNode,
    Snapshot,
    remaining,
)
from orchestrator.core.schedule_conditions import schedule_conditions_hold
from orchestrator.core.states import State
from orchestrator.engine import (
    admission,
    checks,
    flows,
    local_drive,
    operations,
    pending,
)
from orchestrator.engine.sending import send_plan
from orchestrator.secret_backends import SecretFunctions, flow_secret_backend
from orchestrator.settings import Settings
from orchestrator.store.database import Session, read_only
from orchestrator.store.tables import ExecutionRow, FlowRevisionRow

if TYPE_CHECKING:
    from orchestrator.engine.facade import Engine

logger = logging.getLogger(__name__)

#: The label that links every execution of one causal chain (subflows, replays), as in Kestra.
CORRELATION_LABEL = "system.correlationId"


@dataclass(frozen=True)
class WebhookCall:
    """A call to a flow's Webhook trigger: the key in its URL and what becomes `trigger.body/headers/parameters`.

    A start carrying one is resolved in its own transaction (trigger, key, conditions), against the revision
    that transaction reads anyway: a fire costs what an API create costs, no read of its own.
    """

    key: str
    variables: dict[str, Any]


@dataclass(frozen=True)
class SubmitRequest:
    """One start of a flow, as `submit` takes it (what the API and webhooks collect into a group)."""

    namespace: str
    flow_id: str
    inputs: Mapping[str, Any]
    actor: str
    labels: list[dict[str, str]] | None = None
    revision: int | None = None
    trigger: dict[str, Any] | None = None
    execution_id: str | None = None
    scheduled_at: datetime | None = None
    require_inputs: bool = True
    #: A Webhook trigger's call: the flow's trigger answering to its key gives the trigger and inputs.
    webhook: WebhookCall | None = None


def submit(
    engine: Engine,
    namespace: str,
    flow_id: str,
    *,
    inputs: Mapping[str, Any],
    labels: list[dict[str, str]] | None = None,
    actor: str,
    revision: int | None = None,
    trigger: dict[str, Any] | None = None,
    execution_id: str | None = None,
    scheduled_at: datetime | None = None,
    require_inputs: bool = True,
) -> ExecutionRow:
    """Create an execution with typed inputs, mark it RUNNING and dispatch its first canvas.

    With `scheduled_at` in the future (Kestra's `scheduleDate`) it stays CREATED until the sweeper
    starts it then. `require_inputs=False` lets required inputs be missing (a start with no inputs at all).
    """
    request = SubmitRequest(
        namespace, flow_id, inputs, actor, labels, revision, trigger, execution_id, scheduled_at, require_inputs
    )
    return _submit_one(engine, request)


def _submit_one(engine: Engine, request: SubmitRequest) -> ExecutionRow:
    """One start in its own transaction (its control work driven there), then what remains is sent."""
    refused: ChorusError | None = None
    with engine.transaction() as session:
        try:
            prepared = _prepare(engine, session, request)
        except ChorusError as error:
            # Nothing written: the transaction ends with COMMIT, not ROLLBACK, which would make psycopg forget
            # the connection's prepared statements (a webhook whose conditions decline often, a bad input).
            refused = error
        else:
            row, plan = _start(engine, session, prepared, drive=True)
    if refused is not None:
        raise refused
    if plan is not None:
        send_plan(engine.celery, plan, row.id)
    return row


def submit_many(engine: Engine, requests: Sequence[SubmitRequest]) -> list[ExecutionRow | Exception]:
    """Start several executions in one transaction: one commit and one audit write for the whole group.

    What the API and webhooks collect while a previous group is being written (group commit). Each
    request gets its own answer. A request refused before it writes anything (unknown flow, bad inputs or
    labels, a webhook's wrong key or declining conditions: `_prepare`) fails alone and the group goes on
    without it. When the group's writes themselves fail (a refused write, a lost connection), its
    transaction is rolled back and every request is submitted alone, so no request takes its neighbours
    with it and none is half-written.
    """
    if len(requests) == 1:
        return [_submit_alone(engine, requests[0])]
    results: list[ExecutionRow | Exception] = []
    plans: list[tuple[str, PlanNode]] = []
    try:
        with engine.transaction() as session:
            for request in requests:
                try:
                    prepared = _prepare(engine, session, request)
                except ChorusError as error:  # nothing written for it: it fails alone, the group goes on
                    results.append(error)
                    continue
                # A group means this process is busy (requests queued behind the last group): the executions'
                # control work goes to the control pool's processes instead of waiting here behind its own
                # group; a lone request (no queue) runs its control work at once (`submit`, local drive).
                row, plan = _start(engine, session, prepared, drive=False)
                results.append(row)
                if plan is not None:
                    plans.append((row.id, plan))
            store.insert_deferred_executions(session)  # the group's plain starts, one multi-row INSERT
    except Exception:  # each request gets its own answer below, its own error included
        logger.debug("a group of %d submits failed as a whole: submitting each alone", len(requests))
        return [_submit_alone(engine, request) for request in requests]
    for execution_id, plan in plans:
        send_plan(engine.celery, plan, execution_id)
    return results


def _submit_alone(engine: Engine, request: SubmitRequest) -> ExecutionRow | Exception:
    try:
        return _submit_one(engine, request)
    except Exception as error:  # handed back to the caller of this one request
        return error


@dataclass(frozen=True)
class _Prepared:
    """A start checked and ready to write: nothing of it is written yet."""

    request: SubmitRequest
    flow_row: flows.LiveRevision
    inputs: dict[str, Any]
    behavior: str
    messages: list[str]


def _prepare(engine: Engine, session: Session, request: SubmitRequest) -> _Prepared:
    """Everything that may refuse a start, before any write: a refusal leaves its transaction as it found it.

    Raises only ChorusError (NotFound, Conflict, InputInvalid, LabelsInvalid, ExecutionBlocked, WebhookDeclined)
    for the caller's request; a database error is no refusal and propagates.
    """
    flow_row = _live_flow(engine, session, request)
    if request.webhook is not None:
        request = _webhook_start(engine, flow_row.flow, request, request.webhook)
    flow = flow_row.flow
    if flow.disabled:
        raise Conflict(f"flow {request.namespace}.{request.flow_id} is disabled")
    execution_id = request.execution_id or new_id()  # chosen now: the labels checked are those it will store
    request = replace(request, execution_id=execution_id)
    labels = request.labels or []
    _check_labels(_execution_labels(flow, labels, execution_id), engine.settings)
    typed_inputs = coerce_inputs(flow, request.inputs, require=request.require_inputs or bool(request.inputs))
    behavior, messages = checks.check_verdict(flow, typed_inputs, labels)
    return _Prepared(request, flow_row, typed_inputs, behavior, messages)


def _live_flow(engine: Engine, session: Session, request: SubmitRequest) -> flows.LiveRevision:
    """The revision a start runs, read once per flow by a transaction that starts many (a group of fires of
    one webhook reads it once): a later delete cannot reach a transaction that already read the revision
    anyway, as it commits after this one's read either way."""
    known: dict[tuple[str, str, int | None], flows.LiveRevision] = session.info.setdefault("live_flows", {})
    key = (request.namespace, request.flow_id, request.revision)
    found = known.get(key)
    if found is None:
        try:
            found = flows.live_flow(engine, session, request.namespace, request.flow_id, request.revision)
        except NotFound:
            if request.webhook is not None:  # the same 404 as a wrong key: a caller cannot probe for flows
                raise NotFound("webhook", f"{request.namespace}/{request.flow_id}/{request.webhook.key}") from None
            raise
        known[key] = found
    return found


def _start(
    engine: Engine, session: Session, prepared: _Prepared, *, drive: bool
) -> tuple[ExecutionRow, PlanNode | None]:
    """Write a prepared start in the caller's transaction: the execution, and the plan to send once committed.

    With `drive`, the leading pure control work runs here already (engine/local_drive.py): a flow of Log tasks
    ends in this transaction and leaves nothing to send.
    """
    request, flow = prepared.request, prepared.flow_row.flow
    # In a group (no drive), a start that nothing of this transaction reads again is written with the others
    # at the group's end: not one that fails at creation (its log line), nor one a concurrency count must see.
    plain = not drive and prepared.behavior != "FAIL_EXECUTION" and flow.concurrency is None
    row = create_execution(
        engine, session, prepared.flow_row, flow, prepared.inputs, request.labels or [], actor=request.actor,
        trigger=request.trigger, execution_id=request.execution_id, scheduled_at=request.scheduled_at,
        defer_insert=plain,
    )  # fmt: skip
    if prepared.behavior == "FAIL_EXECUTION":
        checks.fail_at_creation(session, row, "; ".join(prepared.messages), actor=request.actor)
    if State(row.state) is not State.RUNNING:
        return row, None
    # A new execution has no task runs yet: its first plan needs no second transaction (what
    # `dispatch` would read back is exactly this), which saves a commit on every submit.
    plan = remaining(flow, Snapshot(row.id, {}, store.utcnow()))
    if not drive:
        return row, plan
    store.hold_new_execution(session, row.id)  # its task runs, for the drive's claims: none yet
    return row, local_drive.drive(engine, session, row, plan, now=row.created_at)[1]


def create_execution(
    engine: Engine,
    session: Session,
    flow_row: FlowRevisionRow | flows.LiveRevision,
    flow: Flow,
    inputs: dict[str, Any],
    labels: list[dict[str, str]],
    *,
    actor: str,
    trigger: dict[str, Any] | None = None,
    parent: tuple[str, str] | None = None,
    execution_id: str | None = None,
    scheduled_at: datetime | None = None,
    retry_of: ExecutionRow | None = None,
    defer_insert: bool = False,
) -> ExecutionRow:
    """Insert a RUNNING execution (CREATED first, both audited); the caller dispatches after commit.

    A `scheduled_at` in the future leaves it CREATED for the sweeper; `retry_of` makes it the next
    attempt of that execution (Kestra's retry `behavior: CREATE_NEW_EXECUTION`). `defer_insert`: when it
    starts RUNNING, its row waits for `store.insert_deferred_executions` (a group's one multi-row INSERT).
    """
    now = store.transaction_now(session)  # updated_at, SLA due: the database clock
    execution_id = execution_id or new_id()
    all_labels = _execution_labels(flow, labels, execution_id)
    _check_labels(all_labels, engine.settings)
    row = ExecutionRow(
        id=execution_id,
        tenant=engine.settings.tenant,
        namespace=flow.namespace,
        flow_id=flow.id,
        flow_revision=flow_row.revision,
        state=str(State.CREATED),
        state_history=[{"state": str(State.CREATED), "date": store.iso(now)}],
        inputs=inputs,
        outputs=None,
        labels=all_labels,
        trigger=trigger,
        parent_execution_id=parent[0] if parent else None,
        parent_task_run_id=parent[1] if parent else None,
        # Kestra's retry `CREATE_NEW_EXECUTION` replays the failed execution (ExecutionService.replay ->
        # Execution.childExecution): the new one keeps the chain's `originalId`, which its tasks may compare
        original_id=(retry_of.original_id or retry_of.id) if retry_of is not None else None,
        restarts=retry_of.restarts + 1 if retry_of is not None else 0,
        created_at=now,
        updated_at=now,
        ended_at=None,
        scheduled_at=scheduled_at if scheduled_at is not None and scheduled_at > now else None,
        original_created_at=(retry_of.original_created_at or retry_of.created_at) if retry_of else None,
    )
    row.sla_due_at, row.sla = operations.sla_deadline(flow, now)
    payload: dict[str, Any] = {"flow_revision": flow_row.revision, "labels": all_labels}
    if row.scheduled_at is not None:
        payload["scheduled_at"] = store.iso(row.scheduled_at)
    if retry_of is not None:
        payload["retry_of"] = retry_of.id
    admitted = _admission(engine, session, flow) if row.scheduled_at is None else None
    running = admitted is State.RUNNING
    store.create_execution(session, row, actor=actor, payload=payload, running=running, defer=defer_insert and running)
    if admitted is not None and not running:
        store.record_transition(session, row, admitted, actor=actor)  # QUEUED, or refused by its concurrency
        if admitted.is_terminal and row.parent_task_run_id is not None:
            # Refused (CANCELLED or FAILED) at birth: its waiting Subflow task run completes from that state
            # (FlowConcurrencyCaseTest.flowConcurrencySubflow), as for a child that ran and ended.
            pending.child_ended(session, row.id)
    return row


def start_scheduled(engine: Engine, now: datetime) -> list[str]:
    """Start the CREATED executions whose `scheduled_at` has come, through concurrency admission."""
    started: list[str] = []
    with engine.transaction() as session:
        for row in store.due_scheduled_executions(session, now):
            flow = flows.flow_of_execution(engine, session, row)
            store.note_execution(session, row)
            state = _admission(engine, session, flow)
            store.record_transition(session, row, state, actor="system:schedule", values={"scheduled_at": None})
            if state is State.RUNNING:
                started.append(row.id)
    for execution_id in started:
        engine.dispatch(execution_id, actor="system:schedule")
    return started


def _admission(engine: Engine, session: Session, flow: Flow) -> State:
    """RUNNING, or what the flow's `concurrency` says when its limit is reached (QUEUED, CANCELLED, FAILED)."""
    if flow.concurrency is not None:  # its count must see every start before it, a group's deferred ones too
        store.insert_deferred_executions(session)
    return admission.admit(engine, session, flow)


def admit_queued(engine: Engine, tenant: str, namespace: str, flow_id: str) -> None:
    """Start queued executions of a flow while its concurrency limit allows."""
    started: list[str] = []
    with engine.transaction() as session:
        row = store.latest_flow(session, tenant, namespace, flow_id)
        flow = engine.flow_of(row) if row is not None else None
        if flow is None or flow.concurrency is None:
            return
        store.lock_flow_concurrency(session, tenant, namespace, flow_id)
        free = flow.concurrency.limit - store.count_active_executions(session, tenant, namespace, flow_id)
        if free <= 0:
            return
        for queued in store.oldest_queued_executions(session, tenant, namespace, flow_id, free):
            store.note_execution(session, queued)
            store.record_transition(session, queued, State.RUNNING, actor="system:concurrency")
            started.append(queued.id)
    for execution_id in started:
        engine.dispatch(execution_id, actor="system:concurrency")


def set_labels(engine: Engine, execution_id: str, labels: list[dict[str, str]], *, actor: str) -> list[dict[str, str]]:
    """Add or override execution labels (the Labels task, the API); audited."""
    with engine.transaction() as session:
        execution = store.lock_execution(session, execution_id)
        if execution is None:
            raise NotFound("execution", execution_id)
        merged = _merge_labels(list(execution.labels), labels)
        _check_labels(merged, engine.settings)
        store.update_labels(session, execution, merged)
        store.append_audit(
            session, execution_id, actor=actor, action="execution.labels", subject=None, payload={"labels": labels}
        )
        return merged


def trigger_webhook(
    engine: Engine, namespace: str, flow_id: str, key: str, variables: dict[str, Any], *, actor: str
) -> tuple[ExecutionRow | None, dict[str, Any]]:
    """Start an execution from a Webhook trigger whose (rendered) key matches; NotFound otherwise, and
    no execution (None) when the trigger's `conditions` (or Kestra 2's `when`) do not hold.

    Unknown flows, disabled triggers and wrong keys all answer the same NotFound, so a caller
    cannot probe which flows exist.
    """
    request = SubmitRequest(namespace, flow_id, {}, actor, webhook=WebhookCall(key, variables))
    try:
        row = _submit_one(engine, request)
    except WebhookDeclined as declined:
        return None, declined.properties
    return row, webhook_properties(engine, row)


def webhook_properties(engine: Engine, execution: ExecutionRow) -> dict[str, Any]:
    """The properties of the Webhook trigger that started this execution (`wait`, `returnOutputs`, ...).

    Read from the revision it runs, which the start parsed in this process: no query then.
    """
    trigger_id = (execution.trigger or {}).get("id")
    with engine.flow_cache.lock:
        flow = engine.flow_cache.flows.get(
            (execution.tenant, execution.namespace, execution.flow_id, execution.flow_revision)
        )
    if flow is None:
        with read_only(engine.sessions) as session:
            flow = flows.flow_of_execution(engine, session, execution)
    trigger = next((t for t in flow.triggers if t.id == trigger_id), None)
    return dict(trigger.properties) if trigger is not None else {}


def _webhook_start(engine: Engine, flow: Flow, request: SubmitRequest, call: WebhookCall) -> SubmitRequest:
    """The start a webhook call asks for: the trigger answering to its key gives the trigger and the inputs.

    NotFound alike for a disabled trigger or a wrong key (and, in `_live_flow`, an unknown flow);
    WebhookDeclined when the trigger's `conditions` (or Kestra 2's `when`) refuse the call.
    """
    trigger = next((t for t in flow.triggers if _webhook_matches(engine, t, flow, call.key)), None)
    if trigger is None:
        raise NotFound("webhook", f"{request.namespace}/{request.flow_id}/{call.key}")
    variables = call.variables
    if not kestra2.when_holds(trigger.properties.get("when"), {"trigger": variables}):
        raise WebhookDeclined(dict(trigger.properties))  # Kestra 2's `when` refuses the event: nothing starts
    conditions = trigger.properties.get("conditions") or []
    if isinstance(conditions, list) and not schedule_conditions_hold(
        conditions, store.utcnow(), {"trigger": variables, "flow": {"id": flow.id, "namespace": flow.namespace}}
    ):
        raise WebhookDeclined(dict(trigger.properties))  # Kestra answers 204 and starts nothing
    inputs = trigger.properties.get("inputs") or {}
    return replace(
        request,
        inputs=inputs if isinstance(inputs, dict) else {},
        trigger={"id": trigger.id, "type": trigger.type_name, "variables": variables},
        webhook=None,
    )


def _webhook_matches(engine: Engine, trigger: Any, flow: Flow | None, key: str) -> bool:
    if flow is None or trigger.type != "Webhook" or trigger.disabled:
        return False
    expected = str(trigger.properties.get("key", ""))
    if has_expression(expected):
        try:
            # Kestra renders the key in a run context of the flow (so `secret()` works) and trims it.
            functions = SecretFunctions(flow_secret_backend(engine.settings, flow.namespace))
            variables = {"flow": {"id": flow.id, "namespace": flow.namespace}}
            expected = render(expected, variables, functions=functions).strip()
        except ExpressionError:
            # A key that cannot render matches nothing: an anonymous caller gets the 404 of a wrong key,
            # not the key's template in an error message.
            logger.warning("webhook %s of %s.%s: its key does not render", trigger.id, flow.namespace, flow.id)
            return False
    # Bytes: compare_digest refuses non-ASCII str, and that TypeError (a 500) told real webhooks from unknown ones.
    return bool(expected) and hmac.compare_digest(expected.encode("utf-8"), key.encode("utf-8", "surrogatepass"))


def _check_labels(labels: list[dict[str, str]], settings: Settings) -> None:
    """Labels are stored per execution, indexed and copied into the audit: bound their number and size."""
    if len(labels) > settings.max_labels:
        raise LabelsInvalid("labels", f"{len(labels)} labels, at most {settings.max_labels} (CHORUS_MAX_LABELS)")
    for index, label in enumerate(labels):
        if len(label["key"]) > settings.max_label_key_chars:
            raise LabelsInvalid(f"labels[{index}].key", f"longer than {settings.max_label_key_chars} characters")
        if len(label["value"]) > settings.max_label_value_chars:
            raise LabelsInvalid(f"labels[{index}].value", f"longer than {settings.max_label_value_chars} characters")


def _execution_labels(flow: Flow, labels: list[dict[str, str]], execution_id: str) -> list[dict[str, str]]:
    """The flow's labels, then the start's (overriding), then the correlation label unless one was given."""
    all_labels = _merge_labels([{"key": label.key, "value": label.value} for label in flow.labels], labels)
    if not any(label["key"] == CORRELATION_LABEL for label in all_labels):
        # Kestra links every execution of one causal chain (subflows, replays) by this label.
        all_labels.append({"key": CORRELATION_LABEL, "value": execution_id})
    return all_labels


def _merge_labels(base: list[dict[str, str]], extra: list[dict[str, str]]) -> list[dict[str, str]]:
    """Later labels override earlier ones with the same key, keeping first-seen order."""
    merged: dict[str, str] = {}
    for label in [*base, *extra]:
        merged[label["key"]] = label["value"]
    return [{"key": k, "value": v} for k, v in merged.items()]
