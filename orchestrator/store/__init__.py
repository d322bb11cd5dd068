"""Every query and write, over a caller-owned Session; `record_transition` is the one path for state.

Functions here never commit: the engine (or an API request) owns the transaction. Writes of state
always go through `record_transition`, which checks the core transition table, updates the row with
compare-and-set on the previous state and appends the audit event in the same transaction.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, Table, Update, and_, bindparam, delete, event, func, insert, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

from orchestrator.core.audit import GENESIS_HASH, AuditKey, chain_hash, event_mac, head_mac
from orchestrator.core.errors import Conflict
from orchestrator.core.states import State, check_transition
from orchestrator.hooks import Transition
from orchestrator.store.tables import (
    AuditEventRow,
    AuditHeadRow,
    ExecutionRow,
    FlowRevisionRow,
    LogLineRow,
    TaskRunRow,
)


def iso_millis(moment: datetime) -> str:
    """Kestra's rendering of instants in expressions: milliseconds, UTC, `Z`."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def error_log_lines(session: Session, execution_id: str) -> Sequence[LogLineRow]:
    return session.scalars(
        select(LogLineRow)
        .where(LogLineRow.execution_id == execution_id, LogLineRow.level == "ERROR")
        .order_by(LogLineRow.id)
    ).all()


def utcnow() -> datetime:
    return datetime.now(UTC)


def db_now(session: Session) -> datetime:
    """The database's clock: the one clock every process agrees on, for heartbeats and their staleness."""
    moment: datetime = session.scalar(text("SELECT now()"))
    return moment


def db_started_at(session: Session) -> datetime:
    """When the database server started: right after a restart, no worker has had the chance to heartbeat."""
    moment: datetime = session.scalar(text("SELECT pg_postmaster_start_time()"))
    return moment


def iso(moment: datetime) -> str:
    """Kestra's timestamp form: ISO-8601 in UTC with a `Z`."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


# ---- audit --------------------------------------------------------------------------------------


def flow_chain_key(tenant: str, namespace: str, flow_id: str) -> str:
    return f"flow:{tenant}/{namespace}/{flow_id}"


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_rollback")
def _forget_transaction_memory(session: Session) -> None:
    """Remembered chain heads are only true while this transaction holds their locks; touches are per
    transaction; events not written by a rolled-back transaction are dropped with it."""
    session.info.pop("audit_heads", None)
    session.info.pop("audit_pending", None)
    session.info.pop("touched", None)


@event.listens_for(Session, "before_commit")
def _write_pending_audit(session: Session) -> None:
    write_pending_audit(session)


def append_audit(
    session: Session,
    chain_key: str,
    *,
    actor: str,
    action: str,
    subject: str | None,
    payload: dict[str, Any],
    at: datetime | None = None,
) -> AuditEventRow:
    """Append one event to a hash chain; the head row's lock orders concurrent appends.

    The event's place and hash are decided now; the row is written with the transaction's other events
    in one statement just before it commits (`write_pending_audit`), so it commits or rolls back with
    the change it records. The head row stays locked by this transaction after its first read, so later
    appends to the same chain trust what this transaction decided last. Inside a savepoint, whose
    rollback must take its events along, events are written at once.
    """
    at = at or utcnow()
    heads: dict[str, tuple[int, str]] = session.info.setdefault("audit_heads", {})
    nested = session.in_nested_transaction()
    if nested:
        write_pending_audit(session)  # the savepoint's own head read must see them
    cached = None if nested else heads.get(chain_key)
    if cached is not None:
        seq, prev_hash = cached[0] + 1, cached[1]
    else:
        head = session.execute(
            select(AuditHeadRow.seq, AuditHeadRow.hash).where(AuditHeadRow.chain_key == chain_key).with_for_update()
        ).first()
        seq, prev_hash = (head.seq + 1, head.hash) if head else (1, GENESIS_HASH)
    event = hashed_event(chain_key, seq, at, actor, action, subject, payload)
    digest = chain_hash(prev_hash, event)
    key = audit_key_of(session)
    row = AuditEventRow(
        chain_key=chain_key,
        seq=seq,
        at=at,
        actor=actor,
        action=action,
        subject=subject,
        payload=payload,
        prev_hash=prev_hash,
        hash=digest,
        key_id=key.key_id if key else None,
        mac=event_mac(key, digest) if key else None,  # one HMAC: as cheap as the hash, no round trip
    )
    if nested:
        heads.pop(chain_key, None)
        _write_audit(session, [row])
    else:
        heads[chain_key] = (seq, digest)
        session.info.setdefault("audit_pending", []).append(row)
    return row


def write_pending_audit(session: Session) -> None:
    """Write the events this transaction appended and not yet wrote (one statement)."""
    pending: list[AuditEventRow] = session.info.pop("audit_pending", [])
    if pending:
        _write_audit(session, pending)


_AUDIT_COLUMNS = [c.key for c in AuditEventRow.__table__.columns if c.key != "id"]
_INSERT_AUDIT = insert(AuditEventRow.__table__)
_HEAD_COLUMNS = ("chain_key", "seq", "hash", "key_id", "mac")
_upsert_head = pg_insert(AuditHeadRow.__table__).values({column: bindparam(column) for column in _HEAD_COLUMNS})
# Two first appends racing both find no head: the events' unique (chain, seq) refuses the loser.
_UPSERT_HEAD = _upsert_head.on_conflict_do_update(
    index_elements=["chain_key"],
    set_={column: getattr(_upsert_head.excluded, column) for column in _HEAD_COLUMNS if column != "chain_key"},
)


def audit_key_of(session: Session) -> AuditKey | None:
    """The MAC key this session's sessionmaker was given (`database.make_sessionmaker(audit_key=...)`)."""
    key = session.info.get("audit_key")
    return key if isinstance(key, AuditKey) else None


def _write_audit(session: Session, rows: Sequence[AuditEventRow]) -> None:
    # Statements built once (their compiled form is cached); the events go in one multi-row INSERT.
    session.execute(_INSERT_AUDIT, [{key: getattr(row, key) for key in _AUDIT_COLUMNS} for row in rows])
    last = {row.chain_key: row for row in rows}
    key = audit_key_of(session)
    heads = [
        {
            "chain_key": r.chain_key,
            "seq": r.seq,
            "hash": r.hash,
            "key_id": key.key_id if key else None,
            "mac": head_mac(key, r.chain_key, r.seq, r.hash) if key else None,
        }
        for r in last.values()
    ]
    session.execute(_UPSERT_HEAD, heads)


def hashed_event(
    chain_key: str, seq: int, at: datetime, actor: str, action: str, subject: str | None, payload: dict[str, Any]
) -> dict[str, Any]:
    """The exact content covered by an event's hash (also rebuilt by verification)."""
    return {
        "chain": chain_key,
        "seq": seq,
        "at": iso(at),
        "actor": actor,
        "action": action,
        "subject": subject,
        "payload": payload,
    }


def audit_events(session: Session, chain_key: str) -> Sequence[AuditEventRow]:
    return session.scalars(
        select(AuditEventRow).where(AuditEventRow.chain_key == chain_key).order_by(AuditEventRow.seq)
    ).all()


def audit_chain_keys(session: Session) -> Sequence[str]:
    return session.scalars(select(AuditHeadRow.chain_key).order_by(AuditHeadRow.chain_key)).all()


# ---- state transitions --------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def _transition_statement(table: Table, columns: tuple[str, ...]) -> Update:
    """UPDATE ... SET <columns> WHERE id = :_id AND state = :_from (a compare-and-set on the state)."""
    condition = and_(table.c.id == bindparam("_id"), table.c.state == bindparam("_from"))
    return update(table).where(condition).values({column: bindparam(f"v_{column}") for column in columns})


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
    at = at or utcnow()
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
    statement = _transition_statement(table, tuple(sorted(changes)))
    params = {f"v_{column}": value for column, value in changes.items()}
    result = session.execute(statement, {**params, "_id": row.id, "_from": str(current)})
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict(f"{kind} {row.id} changed state concurrently (expected {current})")
    for key, value in changes.items():
        set_committed_value(row, key, value)
    _note_transition(session, row, str(current), str(to), at, actor=actor)
    if isinstance(row, ExecutionRow) and to.is_terminal and session.info.get("flow_concurrency"):
        # A concurrency slot of this flow may have freed up: the engine dequeues after commit.
        session.info.setdefault("ended_flows", set()).add((row.tenant, row.namespace, row.flow_id))
    event = {"from": str(current), "to": str(to), **(payload or {})}
    if isinstance(row, TaskRunRow):
        event.update(task_id=row.task_id, attempt=row.attempt)
    action = f"{kind}.state_changed" if override else f"{kind}.{to.lower()}"
    append_audit(session, chain_key, actor=actor, action=action, subject=subject, payload=event, at=at)


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
            attempt_started_at=_attempt_started_at(task_run) if task_run is not None else None,
            retry_at=task_run.retry_at if task_run is not None else None,
            actor=actor,
        )
    )


def _attempt_started_at(row: TaskRunRow) -> datetime | None:
    """When the task run's current attempt was claimed: the first date of its attempt record."""
    histories = row.attempts[-1].get("state", {}).get("histories", []) if row.attempts else []
    return datetime.fromisoformat(histories[0]["date"].replace("Z", "+00:00")) if histories else None


def create_task_run(session: Session, row: TaskRunRow, *, actor: str, payload: dict[str, Any] | None = None) -> bool:
    """Insert a task run if its (deterministic) id is new; audited. False when it already existed."""
    values = {c.key: getattr(row, c.key) for c in TaskRunRow.__table__.columns if c.key != "seq"}
    inserted = session.execute(
        pg_insert(TaskRunRow.__table__)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["id"])
        .returning(TaskRunRow.__table__.c.seq)
    ).first()
    if inserted is None:
        return False
    # Make the row this session's, as if loaded: later reads in this transaction find it without a query.
    row.seq = inserted.seq
    make_transient_to_detached(row)
    session.add(row)
    _note_transition(session, row, None, row.state, row.created_at, actor=actor)
    event = {"to": row.state, "task_id": row.task_id, "attempt": row.attempt, **(payload or {})}
    append_audit(
        session,
        row.execution_id,
        actor=actor,
        action=f"task_run.{row.state.lower()}",
        subject=row.id,
        payload=event,
        at=row.created_at,
    )
    return True


def create_execution(
    session: Session, row: ExecutionRow, *, actor: str, payload: dict[str, Any], running: bool = False
) -> None:
    """Insert an execution CREATED; `running` inserts it already admitted, its CREATED -> RUNNING transition
    recorded and audited exactly as `record_transition` would (one UPDATE less on every start)."""
    at = row.created_at
    if running:
        row.state = str(State.RUNNING)
        row.state_history = [
            {"state": str(State.CREATED), "date": iso(at)},
            {"state": str(State.RUNNING), "date": iso(at)},
        ]
    session.add(row)
    session.flush()
    session.info["execution"] = row
    _note_transition(session, row, None, str(State.CREATED), at, actor=actor)
    append_audit(session, row.id, actor=actor, action="execution.created", subject=None, payload=payload, at=at)
    if running:
        _note_transition(session, row, str(State.CREATED), str(State.RUNNING), at, actor=actor)
        event = {"from": str(State.CREATED), "to": str(State.RUNNING)}
        append_audit(session, row.id, actor=actor, action="execution.running", subject=None, payload=event, at=at)


# ---- reads --------------------------------------------------------------------------------------


def lock_execution(session: Session, execution_id: str) -> ExecutionRow | None:
    """The execution row, locked: every state change of one execution is serialised on it."""
    row = session.scalars(select(ExecutionRow).where(ExecutionRow.id == execution_id).with_for_update()).first()
    session.info["execution"] = row
    return row


def get_execution(session: Session, execution_id: str) -> ExecutionRow | None:
    return session.get(ExecutionRow, execution_id)


def task_runs_of(session: Session, execution_id: str) -> Sequence[TaskRunRow]:
    return session.scalars(
        select(TaskRunRow).where(TaskRunRow.execution_id == execution_id).order_by(TaskRunRow.seq)
    ).all()


def child_execution_states(session: Session, parent_task_run_id: str) -> dict[str, int]:
    """How many child executions of a task run are in each state."""
    query = (
        select(ExecutionRow.state, func.count())
        .where(ExecutionRow.parent_task_run_id == parent_task_run_id)
        .group_by(ExecutionRow.state)
    )
    return {state: count for state, count in session.execute(query).all()}


def child_execution_outputs(session: Session, parent_task_run_id: str) -> list[dict[str, Any]]:
    """The flow outputs of a task run's child executions, in the order of their batch (trigger iteration)."""
    rows = session.execute(
        select(ExecutionRow.trigger, ExecutionRow.outputs).where(ExecutionRow.parent_task_run_id == parent_task_run_id)
    ).all()
    ordered = sorted(rows, key=lambda r: int(((r.trigger or {}).get("variables") or {}).get("taskRunIteration", 0)))
    return [dict(outputs or {}) for _, outputs in ordered]


def task_runs_for_variables(session: Session, execution_id: str) -> Sequence[TaskRunRow]:
    """The task runs a task's expressions can see through (`outputs`, `parents`, `execution.state`): those
    with outputs, every flowable (the ancestors that carry loop values), and the root ones.

    A claim reads this instead of every task run: a ForEach over thousands of values would otherwise make
    each of its task runs read all its siblings (a fan-out's cost growing with its square).
    """
    return session.scalars(
        select(TaskRunRow)
        .where(
            TaskRunRow.execution_id == execution_id,
            # An absent value is stored as JSON null, which jsonb_typeof names 'null' (SQL NULL gives NULL).
            or_(
                func.jsonb_typeof(TaskRunRow.outputs) != "null",
                func.jsonb_typeof(TaskRunRow.decision) != "null",
                TaskRunRow.parent_id.is_(None),
            ),
        )
        .order_by(TaskRunRow.seq)
    ).all()


def get_task_run(session: Session, task_run_id: str, *, lock: bool = False) -> TaskRunRow | None:
    query = select(TaskRunRow).where(TaskRunRow.id == task_run_id)
    return session.scalars(query.with_for_update() if lock else query).first()


def search_executions(
    session: Session,
    tenant: str,
    *,
    namespace: str | None = None,
    flow_id: str | None = None,
    state: str | None = None,
    offset: int = 0,
    limit: int = 25,
) -> tuple[Sequence[ExecutionRow], int]:
    conditions = [ExecutionRow.tenant == tenant]
    if namespace:
        conditions.append(ExecutionRow.namespace == namespace)
    if flow_id:
        conditions.append(ExecutionRow.flow_id == flow_id)
    if state:
        conditions.append(ExecutionRow.state == state)
    total = session.scalar(select(func.count()).select_from(ExecutionRow).where(*conditions)) or 0
    rows = session.scalars(
        select(ExecutionRow).where(*conditions).order_by(ExecutionRow.created_at.desc()).offset(offset).limit(limit)
    ).all()
    return rows, total


def insert_log_lines(session: Session, lines: Sequence[dict[str, Any]]) -> None:
    if lines:
        session.execute(insert(LogLineRow.__table__), list(lines))


def log_lines_of(session: Session, execution_id: str, *, task_run_id: str | None = None) -> Sequence[LogLineRow]:
    query = select(LogLineRow).where(LogLineRow.execution_id == execution_id)
    if task_run_id:
        query = query.where(LogLineRow.task_run_id == task_run_id)
    return session.scalars(query.order_by(LogLineRow.id)).all()


# ---- flows --------------------------------------------------------------------------------------


def latest_flow(
    session: Session, tenant: str, namespace: str, flow_id: str, *, revision: int | None = None
) -> FlowRevisionRow | None:
    query = select(FlowRevisionRow).where(
        FlowRevisionRow.tenant == tenant, FlowRevisionRow.namespace == namespace, FlowRevisionRow.flow_id == flow_id
    )
    if revision is not None:
        query = query.where(FlowRevisionRow.revision == revision)
    return session.scalars(query.order_by(FlowRevisionRow.revision.desc()).limit(1)).first()


def save_flow_revision(
    session: Session, tenant: str, namespace: str, flow_id: str, source: str, document: dict[str, Any]
) -> FlowRevisionRow:
    """A new revision (numbered after the newest), or the newest itself when its source is unchanged."""
    # Lock on the flow key so two deploys of one flow cannot take the same revision number.
    session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"{tenant}/{namespace}/{flow_id}"})
    latest = latest_flow(session, tenant, namespace, flow_id)
    if latest is not None and not latest.deleted and latest.source == source:
        return latest
    row = FlowRevisionRow(
        tenant=tenant,
        namespace=namespace,
        flow_id=flow_id,
        revision=(latest.revision + 1) if latest else 1,
        source=source,
        document=document,
        deleted=False,
        created_at=utcnow(),
    )
    session.add(row)
    session.flush()
    return row


def mark_flow_deleted(session: Session, tenant: str, namespace: str, flow_id: str) -> int:
    result = session.execute(
        update(FlowRevisionRow)
        .where(
            FlowRevisionRow.tenant == tenant,
            FlowRevisionRow.namespace == namespace,
            FlowRevisionRow.flow_id == flow_id,
            FlowRevisionRow.deleted.is_(False),
        )
        .values(deleted=True)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def live_flows_query(tenant: str) -> Select[FlowRevisionRow]:
    """The newest revision of every non-deleted flow of a tenant, as a query callers can narrow."""
    newest = (
        select(
            FlowRevisionRow.namespace,
            FlowRevisionRow.flow_id,
            func.max(FlowRevisionRow.revision).label("revision"),
        )
        .where(FlowRevisionRow.tenant == tenant)
        .group_by(FlowRevisionRow.namespace, FlowRevisionRow.flow_id)
        .subquery()
    )
    query = select(FlowRevisionRow).join(
        newest,
        and_(
            FlowRevisionRow.namespace == newest.c.namespace,
            FlowRevisionRow.flow_id == newest.c.flow_id,
            FlowRevisionRow.revision == newest.c.revision,
        ),
    )
    return query.where(FlowRevisionRow.tenant == tenant, FlowRevisionRow.deleted.is_(False))


def live_flows(session: Session, tenant: str, namespace: str | None = None) -> Sequence[FlowRevisionRow]:
    """The newest revision of every non-deleted flow."""
    query = live_flows_query(tenant)
    if namespace:
        query = query.where(FlowRevisionRow.namespace == namespace)
    return session.scalars(query.order_by(FlowRevisionRow.namespace, FlowRevisionRow.flow_id)).all()


def close_attempt(attempts: list[Any], state: State, at: datetime) -> list[Any]:
    """The attempts list with its last attempt ended in `state` at `at` (unchanged when there is none)."""
    if not attempts:
        return []
    last = dict(attempts[-1])
    histories = [*last["state"]["histories"], {"state": str(state), "date": iso(at)}]
    last["state"] = {"current": str(state), "histories": histories}
    return [*attempts[:-1], last]


# ---- sweeper ------------------------------------------------------------------------------------


def executions_with_due_retries(session: Session, now: datetime, limit: int = 100) -> Sequence[str]:
    """Executions with a retry due, or a loop (RUNNING flowable) whose next iteration is due."""
    return session.scalars(
        select(TaskRunRow.execution_id)
        .where(TaskRunRow.state.in_([str(State.RETRYING), str(State.RUNNING)]), TaskRunRow.retry_at <= now)
        .distinct()
        .limit(limit)
    ).all()


def clear_due_loops(session: Session, execution_id: str, now: datetime) -> None:
    """Forget the due time of loops whose next iteration is being dispatched now."""
    session.execute(
        update(TaskRunRow)
        .where(
            TaskRunRow.execution_id == execution_id,
            TaskRunRow.state == str(State.RUNNING),
            TaskRunRow.retry_at <= now,
        )
        .values(retry_at=None)
    )


def stale_running_executions(session: Session, older_than: datetime, limit: int = 100) -> Sequence[str]:
    """Running executions with no change since `older_than` and no task run heartbeating since then."""
    busy = select(TaskRunRow.id).where(
        TaskRunRow.execution_id == ExecutionRow.id,
        TaskRunRow.state == str(State.RUNNING),
        TaskRunRow.heartbeat_at > older_than,
    )
    return session.scalars(
        select(ExecutionRow.id)
        .where(ExecutionRow.state == str(State.RUNNING), ExecutionRow.updated_at < older_than, ~busy.exists())
        .limit(limit)
    ).all()


def due_scheduled_executions(session: Session, now: datetime, limit: int = 100) -> Sequence[ExecutionRow]:
    """CREATED executions whose `scheduled_at` has come, locked (another sweeper skips them)."""
    return session.scalars(
        select(ExecutionRow)
        .where(ExecutionRow.state == str(State.CREATED), ExecutionRow.scheduled_at <= now)
        .order_by(ExecutionRow.scheduled_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()


def due_paused_task_runs(session: Session, now: datetime, limit: int = 100) -> Sequence[tuple[str, str]]:
    """(execution id, task run id) of PAUSED task runs whose delay or timeout has come."""
    rows = session.execute(
        select(TaskRunRow.execution_id, TaskRunRow.id)
        .where(TaskRunRow.state == str(State.PAUSED), TaskRunRow.retry_at <= now)
        .order_by(TaskRunRow.retry_at)
        .limit(limit)
    ).all()
    return [(r[0], r[1]) for r in rows]


def discard_task_run(session: Session, row: TaskRunRow, *, actor: str) -> None:
    """Remove a task run a restart will run afresh (an errors or finally phase); audited, never silent."""
    session.execute(delete(TaskRunRow).where(TaskRunRow.id == row.id))
    append_audit(
        session,
        row.execution_id,
        actor=actor,
        action="task_run.discarded",
        subject=row.id,
        payload={"task_id": row.task_id, "state": row.state, "attempts": len(row.attempts)},
    )


_ACTIVE = (State.RUNNING, State.PAUSED, State.RESTARTED, State.KILLING, State.RETRYING)


def lock_flow_concurrency(session: Session, tenant: str, namespace: str, flow_id: str) -> None:
    """Serialise concurrency decisions for one flow across every replica (transaction-scoped)."""
    session.execute(
        text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"concurrency:{tenant}/{namespace}/{flow_id}"}
    )


def count_active_executions(session: Session, tenant: str, namespace: str, flow_id: str) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(ExecutionRow)
            .where(
                ExecutionRow.tenant == tenant,
                ExecutionRow.namespace == namespace,
                ExecutionRow.flow_id == flow_id,
                ExecutionRow.state.in_([str(s) for s in _ACTIVE]),
            )
        )
        or 0
    )


def oldest_queued_executions(
    session: Session, tenant: str, namespace: str, flow_id: str, limit: int
) -> Sequence[ExecutionRow]:
    return session.scalars(
        select(ExecutionRow)
        .where(
            ExecutionRow.tenant == tenant,
            ExecutionRow.namespace == namespace,
            ExecutionRow.flow_id == flow_id,
            ExecutionRow.state == str(State.QUEUED),
        )
        .order_by(ExecutionRow.created_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()


def executions_past_sla(session: Session, now: datetime, limit: int = 100) -> Sequence[str]:
    """Unfinished executions whose SLA deadline has passed."""
    terminal = [str(s) for s in State if s.is_terminal]
    return session.scalars(
        select(ExecutionRow.id)
        .where(ExecutionRow.sla_due_at <= now, ExecutionRow.state.not_in(terminal))
        .order_by(ExecutionRow.sla_due_at)
        .limit(limit)
    ).all()


def clear_sla(session: Session, execution_id: str) -> None:
    session.execute(update(ExecutionRow).where(ExecutionRow.id == execution_id).values(sla_due_at=None))


def running_children(session: Session, execution_id: str) -> list[str]:
    """Subflow executions of this one that have not ended."""
    terminal = [str(s) for s in State if s.is_terminal]
    return list(
        session.scalars(
            select(ExecutionRow.id).where(
                ExecutionRow.parent_execution_id == execution_id, ExecutionRow.state.not_in(terminal)
            )
        ).all()
    )


def update_labels(session: Session, execution: ExecutionRow, labels: list[dict[str, str]]) -> None:
    session.execute(update(ExecutionRow).where(ExecutionRow.id == execution.id).values(labels=labels))
    execution.labels = labels


def touch_execution(session: Session, execution_id: str, at: datetime) -> None:
    """Mark progress (not a state change): keeps the stale-execution sweep away from live runs."""
    touched: set[str] = session.info.setdefault("touched", set())
    if execution_id in touched:
        return  # once per transaction is enough: its commit is the progress
    touched.add(execution_id)
    executions = ExecutionRow.__table__
    session.execute(update(executions).where(executions.c.id == execution_id).values(updated_at=at))


def heartbeat(session: Session, task_run_id: str, owner: str) -> None:
    """Refresh a claim, stamped by the database's clock (a worker's own clock may be off by seconds)."""
    session.execute(
        update(TaskRunRow)
        .where(TaskRunRow.id == task_run_id, TaskRunRow.claim_owner == owner)
        .values(heartbeat_at=func.now())
    )


def try_advisory_lock(session: Session, key: int) -> bool:
    """A transaction-scoped advisory lock, without waiting (one sweeper among replicas)."""
    return bool(session.scalar(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": key}))
