"""Task runs created by this transaction and not written yet: each is inserted once, with the state it has when
the transaction writes it, instead of an INSERT at its claim and an UPDATE at its end.

A claim under the execution's lock that knows every task run of the execution (`task_runs.known_absent`) creates
a row no one else can create or see before commit. So the row is kept here, changed in memory by its transitions
(`record_transition`), and written by the transaction's one before-commit statement (`commit_writes`, a CTE
beside the audit events): an inline Log run in a submit or a finish costs no statement of its own, and a worker's
claim of a task run on its pool one statement less.

Any other statement of the session might read or change `task_runs`: before it runs, the rows kept here are
written on their own (one multi-row INSERT), so every statement sees what the transaction did. Only an UPDATE
of `executions` (a touch, an execution's transition: neither reads task runs) lets them wait. A unit-of-work
flush writes them first too. Nothing is kept inside a savepoint (its rollback must take the row back), and a
savepoint begun while rows wait is refused, loudly, rather than written inside it and rolled back with it.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Update, bindparam, event, insert
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction, UOWTransaction
from sqlalchemy.orm.attributes import set_committed_value

from orchestrator.core.errors import Conflict
from orchestrator.store.tables import ExecutionRow, TaskRunRow, table_of

_PENDING = "task_runs_pending"  #: {task run id: row} created by this transaction, not written yet

#: Every column but `seq` (the database numbers rows as they are inserted: creation order, as before).
COLUMNS = [c.key for c in TaskRunRow.__table__.columns if c.key != "seq"]
#: The JSONB columns, taken from the JSON as they are (a JSON null stays a JSON null, as the ORM stores None).
_JSONB = ("state_history", "attempts", "outputs", "decision")
_EXECUTIONS = table_of(ExecutionRow)
_INSERT = (
    insert(table_of(TaskRunRow))
    .values({key: bindparam(key) for key in COLUMNS})
    .returning(table_of(TaskRunRow).c.id, table_of(TaskRunRow).c.seq)
)

#: The CTE `commit_writes` adds to its statement: the rows as one JSON array, in creation order.
RUNS_CTE = f"""runs AS (INSERT INTO task_runs ({", ".join(COLUMNS)})
 SELECT {", ".join(f"r.e -> '{c}'" if c in _JSONB else f"t.{c}" for c in COLUMNS)}
 FROM jsonb_array_elements(CAST(:runs AS JSONB)) WITH ORDINALITY AS r(e, n),
 LATERAL jsonb_populate_record(NULL::task_runs, r.e) AS t ORDER BY r.n)"""

#: A placeholder `seq` above any real one while a row waits: an in-memory list ordered by `seq`
#: (`VariableRuns`) puts it after the rows already written, where the database will put it.
_WAITING_SEQ = 1 << 62


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop(_PENDING, None)


def defer(session: Session, row: TaskRunRow) -> bool:
    """Keep `row` (new, absent from the database, the execution locked) to be written later; False when it must be
    inserted now (inside a savepoint)."""
    if session.in_nested_transaction():
        return False
    pending: dict[str, TaskRunRow] = session.info.setdefault(_PENDING, {})
    row.seq = _WAITING_SEQ + len(pending)
    pending[row.id] = row
    return True


def is_pending(session: Session, row: TaskRunRow) -> bool:
    """Whether `row` waits to be written (a transition changes it in memory only)."""
    return row.id in session.info.get(_PENDING, ())


def take_pending(session: Session) -> str | None:
    """The rows waiting, as the JSON array `RUNS_CTE` reads (None: none), now the caller's to write."""
    pending: dict[str, TaskRunRow] = session.info.pop(_PENDING, {})
    if not pending:
        return None
    return json.dumps([_values(row, iso=True) for row in pending.values()])


def write_pending(session: Session) -> None:
    """Write the rows waiting now, on their own (a statement that may see task runs comes next)."""
    pending: dict[str, TaskRunRow] = session.info.pop(_PENDING, {})
    if not pending:
        return
    # A multi-row INSERT (insertmanyvalues) of the rows' current values; the ids are the claims' deterministic
    # ones, which no other transaction can write while this one holds the execution's lock: a duplicate is a bug.
    written = session.execute(_INSERT, [_values(row) for row in pending.values()]).all()
    seqs = {found.id: found.seq for found in written}
    for row in pending.values():
        if row.id not in seqs:
            raise Conflict(f"task run {row.id} was not written")
        set_committed_value(row, "seq", seqs[row.id])


def _values(row: TaskRunRow, *, iso: bool = False) -> dict[str, Any]:
    values = {key: getattr(row, key) for key in COLUMNS}
    if iso:
        for key in ("retry_at", "heartbeat_at", "created_at", "updated_at"):
            if values[key] is not None:
                values[key] = values[key].isoformat()
    return values


def _needs_no_task_runs(statement: object) -> bool:
    return isinstance(statement, Update) and statement.table is _EXECUTIONS


@event.listens_for(Session, "do_orm_execute")
def _before_statement(state: ORMExecuteState) -> None:
    if state.session.info.get(_PENDING) and not _needs_no_task_runs(state.statement):
        write_pending(state.session)


@event.listens_for(Session, "before_flush")
def _before_flush(session: Session, _flush: UOWTransaction, _objects: object) -> None:
    write_pending(session)


@event.listens_for(Session, "after_transaction_create")
def _no_savepoint_while_waiting(session: Session, transaction: SessionTransaction) -> None:
    if transaction.nested and session.info.get(_PENDING):
        raise RuntimeError("a savepoint begun while task runs wait to be written: write_pending() first")
