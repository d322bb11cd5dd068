"""The one audited path for state: creating executions and task runs, and every state change with its audit event."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Table, Update, and_, bindparam, delete, insert, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

from orchestrator.core.errors import Conflict
from orchestrator.core.states import State, check_transition
from orchestrator.core.transition import Transition
from orchestrator.store import pending_runs
from orchestrator.store.audit_chain import note_audit, start_chain
from orchestrator.store.clock import iso, transaction_now
from orchestrator.store.tables import (
    ExecutionRow,
    TaskRunRow,
    table_of,
)
from orchestrator.store.task_runs import (
    descends_from,
    forget_task_run,
    hold,
    known_absent,
    loaded_task_run,
    task_runs_of,
    waiting_task_runs,
)


@functools.lru_cache(maxsize=256)
def _transition_statement(table: Table, columns: tuple[str, ...]) -> Update:
    """UPDATE ... SET <columns> WHERE id = :_id AND state = :_from (a compare-and-set on the state)."""
    condition = and_(table.c.id == bindparam("_id"), table.c.state == bindparam("_from"))
    return update(table).where(condition).values({column: bindparam(f"v_{column}") for column in columns})


FlowKey = tuple[str, str, str]  #: (tenant, namespace, flow id)


def note_execution(session: Session, row: ExecutionRow) -> None:
    """The execution whose task runs this transaction changes next: its namespace and flow label their transitions."""
    session.info["execution"] = row


def note_flow(
    session: Session, task_types: Mapping[str, str] | None = None, *, concurrency: bool | None = None
) -> None:
    """What the flow of this transaction's execution declares: its task types (labels of the task-run
    transitions) and whether it has a concurrency limit (an execution ending then frees a slot)."""
    if task_types is not None:
        session.info["task_types"] = task_types
    if concurrency is not None:
        session.info["flow_concurrency"] = concurrency


def recorded_changes(session: Session) -> tuple[list[Transition], set[FlowKey]]:
    """The transitions this transaction recorded, and the flows with a concurrency limit whose executions ended."""
    return list(session.info.get("transitions", ())), set(session.info.get("ended_flows", ()))


def record_transition(
    session: Session,
    row: ExecutionRow | TaskRunRow,
    to: State,
    *,
    actor: str,
    payload: dict[str, Any] | None = None,
    values: dict[str, Any] | None = None,
    at: datetime | None = None,
    override: bool = False,
) -> None:
    """Move an execution or task run to `to`: table check, compare-and-set, history, audit — one transaction.

    `override` skips the transition table for a person's explicit state change (Kestra's "change
    state"); it is audited as `<kind>.state_changed`, so such moves stay visible as what they are.
    """
    # The database's clock: `updated_at` is what the stale-execution sweep compares with the database's time.
    at = at or transaction_now(session)
    current = State(row.state)
    kind = "execution" if isinstance(row, ExecutionRow) else "task_run"
    if not override:
        check_transition(f"{kind} {row.id}", current, to)
    history = [*row.state_history, {"state": str(to), "date": iso(at)}]
    changes: dict[str, Any] = {"state": str(to), "state_history": history, "updated_at": at, **(values or {})}
    if isinstance(row, ExecutionRow):
        if to.is_terminal:
            changes.setdefault("ended_at", at)
        table = ExecutionRow.__table__
        chain_key, subject = row.id, None
    else:
        table, chain_key, subject = TaskRunRow.__table__, row.execution_id, row.id
    # A Core statement on the table (not the mapped class), built once per set of columns: no ORM
    # bookkeeping per statement. The row object then takes the new values as its committed state, so the
    # session has nothing to flush.
    if not (isinstance(row, TaskRunRow) and pending_runs.is_pending(session, row)):
        statement = _transition_statement(table, tuple(sorted(changes)))
        params = {f"v_{column}": value for column, value in changes.items()}
        result = session.execute(statement, {**params, "_id": row.id, "_from": str(current)})
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise Conflict(f"{kind} {row.id} changed state concurrently (expected {current})")
    # else: a task run this transaction created and has not written yet: it is written once, as it ends up.
    for key, value in changes.items():
        set_committed_value(row, key, value)
    if isinstance(row, ExecutionRow) and to.is_terminal and session.info.get("flow_concurrency"):
        # A concurrency slot of this flow may have freed up: the engine dequeues after commit.
        session.info.setdefault("ended_flows", set()).add((row.tenant, row.namespace, row.flow_id))
    event = {"from": str(current), "to": str(to), **(payload or {})}
    if isinstance(row, TaskRunRow):
        event.update(task_id=row.task_id, attempt=row.attempt)
    action = f"{kind}.state_changed" if override else f"{kind}.{to.lower()}"
    audited = note_audit(session, chain_key, actor=actor, action=action, subject=subject, payload=event, at=at)
    _note_transition(session, row, str(current), str(to), at, actor=actor, audit_hash=audited["hash"])
    if isinstance(row, TaskRunRow) and current is State.PAUSED and to not in _STOPPING:
        _resume_enclosing(session, row, actor=actor, at=at)


#: A paused task run moving to one of these is being stopped: the kill moves its enclosing runs itself.
_STOPPING = frozenset({State.PAUSED, State.KILLING, State.KILLED, State.CANCELLED})


def _resume_enclosing(session: Session, row: TaskRunRow, *, actor: str, at: datetime) -> None:
    """Enclosing task runs paused on `row`'s behalf (`pause_task_run`'s `enclosing`) run again once no
    other task run under them is still paused."""
    ancestors: list[TaskRunRow] = []
    parent = loaded_task_run(session, row.parent_id) if row.parent_id else None
    while parent is not None:
        ancestors.append(parent)
        parent = loaded_task_run(session, parent.parent_id) if parent.parent_id else None
    paused = [a for a in ancestors if State(a.state) is State.PAUSED]
    if not paused:
        return  # the common case, a Pause under running parents: no read of the other task runs
    runs = task_runs_of(session, row.execution_id)
    waiting = {r.id for r in waiting_task_runs(runs)}
    by_id = {r.id: r for r in runs}
    for ancestor in paused:  # nearest first: an inner Loop may run again while an outer one still waits
        if any(descends_from(by_id[run_id].parent_id, ancestor.id, by_id) for run_id in waiting):
            return
        record_transition(session, ancestor, State.RUNNING, actor=actor, at=at)


def note_take_over(session: Session, row: TaskRunRow, *, actor: str, at: datetime) -> None:
    """Remember that a stalled claim's attempt was taken over (a RUNNING -> RUNNING transition for the hooks)."""
    _note_transition(session, row, row.state, row.state, at, actor=actor)


def _note_transition(
    session: Session,
    row: ExecutionRow | TaskRunRow,
    previous: str | None,
    state: str,
    at: datetime,
    *,
    actor: str | None = None,
    audit_hash: str | None = None,
) -> None:
    """Remember a transition on the session; the engine hands them to hooks after commit."""
    execution = session.info.get("execution")
    task_run = row if isinstance(row, TaskRunRow) else None
    session.info.setdefault("transitions", []).append(
        Transition(
            kind="execution" if isinstance(row, ExecutionRow) else "task_run",
            subject_id=row.id,
            execution_id=row.id if isinstance(row, ExecutionRow) else row.execution_id,
            namespace=execution.namespace if execution is not None else "",
            flow_id=execution.flow_id if execution is not None else "",
            task_id=None if isinstance(row, ExecutionRow) else row.task_id,
            task_type=session.info.get("task_types", {}).get(row.task_id) if isinstance(row, TaskRunRow) else None,
            previous=previous,
            state=state,
            at=at,
            started_at=row.created_at,
            attempt=task_run.attempt if task_run is not None else None,
            attempt_started_at=_attempt_started_at(task_run) if task_run is not None else _restarted_at(row),
            retry_at=task_run.retry_at if task_run is not None else None,
            actor=actor,
            parent_id=row.parent_id if isinstance(row, TaskRunRow) else row.parent_task_run_id,
            parent_execution_id=row.parent_execution_id if isinstance(row, ExecutionRow) else None,
            audit_hash=audit_hash,
            restarts=row.restarts if isinstance(row, ExecutionRow) else 0,
        )
    )


def _restarted_at(row: ExecutionRow | TaskRunRow) -> datetime | None:
    """When an execution's latest restart began: the last RESTARTED date of its history (None: never restarted)."""
    if not isinstance(row, ExecutionRow) or not row.restarts:
        return None
    dates = [h["date"] for h in row.state_history if h.get("state") == str(State.RESTARTED)]
    return datetime.fromisoformat(dates[-1].replace("Z", "+00:00")) if dates else None


def _attempt_started_at(row: TaskRunRow) -> datetime | None:
    """When the task run's current attempt was claimed: the first date of its attempt record."""
    histories = row.attempts[-1].get("state", {}).get("histories", []) if row.attempts else []
    return datetime.fromisoformat(histories[0]["date"].replace("Z", "+00:00")) if histories else None


_TASK_RUN_COLUMNS = [c.key for c in TaskRunRow.__table__.columns if c.key != "seq"]
#: Built once (a per-call `.values(**row)` costs ~34 coercions and a cache key each time).
_INSERT_TASK_RUN = (
    pg_insert(table_of(TaskRunRow))
    .values({key: bindparam(key) for key in _TASK_RUN_COLUMNS})
    .on_conflict_do_nothing(index_elements=["id"])
    .returning(table_of(TaskRunRow).c.seq)
)


def create_task_run(session: Session, row: TaskRunRow, *, actor: str, payload: dict[str, Any] | None = None) -> bool:
    """Insert a task run if its (deterministic) id is new; audited. False when it already existed.

    When this transaction holds the execution's lock and knows all its task runs, a new row is not written now but
    once, as it is when the transaction writes (`pending_runs`): its end costs no UPDATE, its start no INSERT.
    """
    if not (known_absent(session, row.execution_id, row.id) and pending_runs.defer(session, row)):
        inserted = session.execute(_INSERT_TASK_RUN, {key: getattr(row, key) for key in _TASK_RUN_COLUMNS}).first()
        if inserted is None:
            return False
        row.seq = inserted.seq
    # Make the row this session's, as if loaded: later reads in this transaction find it without a query.
    make_transient_to_detached(row)
    session.add(row)
    hold(session, row)
    ids = {"task_id": row.task_id, "attempt": row.attempt, **(payload or {})}
    born = [h.get("state") for h in row.state_history[:2]]
    if born == [str(State.CREATED), row.state] and row.state != str(State.CREATED):
        # A task run inserted already claimed: its CREATED entry is audited too (one event per history entry).
        note_audit(
            session,
            row.execution_id,
            actor=actor,
            action="task_run.created",
            subject=row.id,
            payload={"to": str(State.CREATED), **ids},
            at=row.created_at,
        )
        ids = {"from": str(State.CREATED), **ids}
    audited = note_audit(
        session,
        row.execution_id,
        actor=actor,
        action=f"task_run.{row.state.lower()}",
        subject=row.id,
        payload={"to": row.state, **ids},
        at=row.created_at,
    )
    _note_transition(session, row, None, row.state, row.created_at, actor=actor, audit_hash=audited["hash"])
    return True


def create_execution(
    session: Session,
    row: ExecutionRow,
    *,
    actor: str,
    payload: dict[str, Any],
    running: bool = False,
    defer: bool = False,
) -> None:
    """Insert an execution CREATED; `running` inserts it already admitted, its CREATED -> RUNNING transition
    recorded and audited exactly as `record_transition` would (one UPDATE less on every start).

    `defer`: the row is written by `insert_deferred_executions`, with the other deferred ones of the
    transaction in one multi-row INSERT; the caller guarantees nothing reads or references it before then.
    """
    at = row.created_at
    if running:
        row.state = str(State.RUNNING)
        row.state_history = [
            {"state": str(State.CREATED), "date": iso(at)},
            {"state": str(State.RUNNING), "date": iso(at)},
        ]
    # A Core INSERT of every column (the ORM's unit-of-work flush costs several times the statement), then
    # the row joins the session as if loaded: later changes to it are flushed as updates, as before.
    values = _insert_values(row)
    if defer:
        session.info.setdefault("deferred_executions", []).append(values)
    else:
        session.execute(_INSERT_EXECUTION, values)
    make_transient_to_detached(row)
    session.add(row)
    session.info["execution"] = row
    session.info.setdefault("touched", set()).add(row.id)  # inserted now: no touch needed to show progress
    start_chain(session, row.id)  # the INSERT above succeeded: this execution's chain is new
    audited = note_audit(session, row.id, actor=actor, action="execution.created", subject=None, payload=payload, at=at)
    _note_transition(session, row, None, str(State.CREATED), at, actor=actor, audit_hash=audited["hash"])
    if running:
        event = {"from": str(State.CREATED), "to": str(State.RUNNING)}
        audited = note_audit(
            session, row.id, actor=actor, action="execution.running", subject=None, payload=event, at=at
        )
        _note_transition(
            session, row, str(State.CREATED), str(State.RUNNING), at, actor=actor, audit_hash=audited["hash"]
        )


_INSERT_EXECUTION = insert(table_of(ExecutionRow))


def insert_deferred_executions(session: Session) -> None:
    """Write the executions `create_execution(defer=True)` kept, in one statement (SQLAlchemy renders the
    executemany as multi-row INSERTs); nothing when none waits."""
    deferred: list[dict[str, Any]] = session.info.pop("deferred_executions", [])
    if deferred:
        session.execute(_INSERT_EXECUTION, deferred)


def _insert_values(row: ExecutionRow) -> dict[str, Any]:
    """Every column's value, the mapped defaults applied to those left unset (and set on the row, so that
    the row holds exactly what was inserted and nothing is loaded again)."""
    values: dict[str, Any] = {}
    for column in table_of(ExecutionRow).columns:
        value = getattr(row, column.key)
        if value is None and column.default is not None and getattr(column.default, "is_scalar", False):
            value = column.default.arg  # type: ignore[attr-defined]
        setattr(row, column.key, value)
        values[column.key] = value
    return values


def discard_task_run(session: Session, row: TaskRunRow, *, actor: str) -> None:
    """Remove a task run a restart will run afresh (an errors or finally phase); audited, never silent."""
    session.execute(delete(TaskRunRow).where(TaskRunRow.id == row.id))
    forget_task_run(session, row.id)
    note_audit(
        session,
        row.execution_id,
        actor=actor,
        action="task_run.discarded",
        subject=row.id,
        payload={"task_id": row.task_id, "state": row.state, "attempts": len(row.attempts)},
    )


def pause_task_run(
    session: Session,
    execution: ExecutionRow,
    row: TaskRunRow,
    *,
    due: datetime | None,
    actor: str,
    enclosing: Sequence[TaskRunRow] = (),
    park_execution: bool = True,
) -> None:
    """Park a task run (a Pause task) and its execution; `due` is when the sweeper wakes it.

    `enclosing` are running task runs that pause with it (Kestra 2's Loop, whose iteration is a paused
    sub-execution); they run again when it does. `park_execution` False leaves the execution RUNNING (another
    task run is still on its way to a pause).
    """
    record_transition(session, row, State.PAUSED, actor=actor, values={"retry_at": due, "claim_owner": None})
    for parent in enclosing:
        if State(parent.state) is State.RUNNING:
            record_transition(session, parent, State.PAUSED, actor=actor)
    if park_execution and State(execution.state) is State.RUNNING:
        record_transition(session, execution, State.PAUSED, actor=actor)
