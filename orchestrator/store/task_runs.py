"""Task-run rows: reads (locked or not), the rows variables need, attempts and heartbeats."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, bindparam, event, func, or_, select, update
from sqlalchemy.orm import Session

from orchestrator.core.decision import TaskRunDecision
from orchestrator.core.states import State
from orchestrator.store.clock import iso
from orchestrator.store.tables import (
    TaskRunRow,
)

# What a transaction read or created stays referenced from `session.info` until it ends. The identity map
# holds rows weakly: a task run created by a claim was dropped as soon as the claim returned, and read
# again by the finish that followed. With the execution's lock held, the set of its task runs is also
# known once read in full (`hold_task_runs`): rows are created or removed only under that lock, through
# `create_task_run` and `forget_task_run`, which keep the held set true.
_HELD = "task_runs_held"  #: {task run id: row} this transaction read or created
_ALL = "task_runs_all"  #: (execution id, its task runs in `seq` order) once read in full


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_rollback")
def _forget_held(session: Session) -> None:
    session.info.pop(_HELD, None)
    session.info.pop(_ALL, None)


def hold(session: Session, row: TaskRunRow) -> None:
    """Keep a row this transaction created (or read) for its later reads; a full set held gains it."""
    session.info.setdefault(_HELD, {})[row.id] = row
    held_all = session.info.get(_ALL)
    if held_all is not None and held_all[0] == row.execution_id and all(r.id != row.id for r in held_all[1]):
        held_all[1].append(row)


def forget_task_run(session: Session, task_run_id: str) -> None:
    """A row deleted in this transaction leaves what it holds."""
    session.info.get(_HELD, {}).pop(task_run_id, None)
    held_all = session.info.get(_ALL)
    if held_all is not None:
        held_all[1][:] = [r for r in held_all[1] if r.id != task_run_id]


def forget_held_sets(session: Session) -> None:
    """A statement changed task runs behind the rows' backs: the next full read asks the database again."""
    session.info.pop(_ALL, None)


def hold_task_runs(session: Session, execution_id: str) -> Sequence[TaskRunRow]:
    """Every task run of an execution whose lock this transaction holds, read once: later `task_runs_of`,
    `task_runs_for_variables` and task-run reads of this execution in the transaction need no query."""
    held_all = session.info.get(_ALL)
    if held_all is not None and held_all[0] == execution_id:
        return list(held_all[1])
    rows = list(_query_task_runs_of(session, execution_id))
    session.info[_ALL] = (execution_id, rows)
    held = session.info.setdefault(_HELD, {})
    held.update((row.id, row) for row in rows)
    return list(rows)


def hold_new_execution(session: Session, execution_id: str) -> None:
    """An execution this transaction has just inserted has no task runs: later reads of them need no query."""
    session.info[_ALL] = (execution_id, [])


def _held_all(session: Session, execution_id: str) -> list[TaskRunRow] | None:
    held_all = session.info.get(_ALL)
    return list(held_all[1]) if held_all is not None and held_all[0] == execution_id else None


def known_absent(session: Session, execution_id: str, task_run_id: str) -> bool:
    """True when this transaction holds every task run of the execution and this one is not among them."""
    held = _held_all(session, execution_id)
    return held is not None and all(row.id != task_run_id for row in held)


def task_runs_of(session: Session, execution_id: str) -> Sequence[TaskRunRow]:
    held = _held_all(session, execution_id)
    return held if held is not None else _query_task_runs_of(session, execution_id)


def _query_task_runs_of(session: Session, execution_id: str) -> Sequence[TaskRunRow]:
    return session.scalars(_OF_EXECUTION, {"execution_id": execution_id}).all()


def task_run_states_of(session: Session, execution_id: str) -> Sequence[Row[Any] | TaskRunRow]:
    """What the planner decides on for each task run of an execution (its `TaskRunView` fields), by `seq`.

    Joins and dispatches read this instead of whole rows: a fan-out's children carry outputs, attempts
    and state histories that no decision looks at, and a 1,000-wide ForEach would load them all per join.
    Rows this transaction already holds in full (`hold_task_runs`; a new execution's: none) need no query.
    """
    held = _held_all(session, execution_id)
    if held is not None:
        return held
    return session.execute(_STATES_OF, {"execution_id": execution_id}).all()


def task_runs_for_variables(session: Session, execution_id: str) -> Sequence[TaskRunRow]:
    """The task runs a task's expressions can see through (`outputs`, `parents`, `execution.state`): those
    with outputs, every flowable (the ancestors that carry loop values), and the root ones.

    A claim reads this instead of every task run: a ForEach over thousands of values would otherwise make
    each of its task runs read all its siblings (a fan-out's cost growing with its square).
    """
    held = _held_all(session, execution_id)
    if held is not None:  # the same filter on rows already read (JSON null is None, as SQL NULL)
        return [r for r in held if r.outputs is not None or r.decision is not None or r.parent_id is None]
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


# Built once: a statement built per call costs more CPU than its round trip (construction and its cache key).
_GET = select(TaskRunRow).where(TaskRunRow.id == bindparam("task_run_id"))
_GET_LOCKED = _GET.with_for_update()
_OF_EXECUTION = select(TaskRunRow).where(TaskRunRow.execution_id == bindparam("execution_id")).order_by(TaskRunRow.seq)
_STATES_OF = (
    select(
        TaskRunRow.id,
        TaskRunRow.task_id,
        TaskRunRow.parent_id,
        TaskRunRow.iteration,
        TaskRunRow.state,
        TaskRunRow.attempt,
        TaskRunRow.decision,
        TaskRunRow.retry_at,
        TaskRunRow.updated_at,
    )
    .where(TaskRunRow.execution_id == bindparam("execution_id"))
    .order_by(TaskRunRow.seq)
)


def get_task_run(session: Session, task_run_id: str, *, lock: bool = False) -> TaskRunRow | None:
    row = session.scalars(_GET_LOCKED if lock else _GET, {"task_run_id": task_run_id}).first()
    if row is not None:
        hold(session, row)
    return row


def loaded_task_run(session: Session, task_run_id: str) -> TaskRunRow | None:
    """The task run as this transaction holds it (no query when it has already read or created it)."""
    held: dict[str, TaskRunRow] = session.info.get(_HELD, {})
    return held.get(task_run_id) or session.get(TaskRunRow, task_run_id)


def set_decision(session: Session, task_run_id: str, decision: TaskRunDecision) -> None:
    """Replace a task run's `decision` (what its flowable parent decided: retries counted, branch chosen)."""
    # An ORM-enabled UPDATE: the rows this session holds take the new value too (synchronize_session).
    session.execute(update(TaskRunRow).where(TaskRunRow.id == task_run_id).values(decision=decision))


def close_attempt(attempts: list[Any], state: State, at: datetime) -> list[Any]:
    """The attempts list with its last attempt ended in `state` at `at` (unchanged when there is none)."""
    if not attempts:
        return []
    last = dict(attempts[-1])
    histories = [*last["state"]["histories"], {"state": str(state), "date": iso(at)}]
    last["state"] = {"current": str(state), "histories": histories}
    return [*attempts[:-1], last]


def heartbeat(session: Session, task_run_id: str, owner: str) -> bool:
    """Refresh a claim, stamped by the database's clock (a worker's own clock may be off by seconds); False when
    the claim is no longer `owner`'s (taken over, handed back or ended)."""
    result = session.execute(
        update(TaskRunRow)
        .where(TaskRunRow.id == task_run_id, TaskRunRow.claim_owner == owner)
        .values(heartbeat_at=func.now())
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def task_runs_of_celery_task(session: Session, celery_task_id: str) -> Sequence[TaskRunRow]:
    """The task runs with an attempt a Celery message of this id claimed, by `seq` (a `run_inline` message
    claims several; a WorkingDirectory's children record their parent's message).

    For `chorus retry` only, when the result backend no longer knows the message: a containment scan with no
    index, as a GIN index over `attempts` would be maintained on every claim and finish for a rare operator read.
    """
    return session.scalars(
        select(TaskRunRow)
        .where(TaskRunRow.attempts.contains([{"celeryTaskId": celery_task_id}]))
        .order_by(TaskRunRow.seq)
    ).all()


def descends_from(parent_id: str | None, ancestor_id: str, by_id: Mapping[str, TaskRunRow]) -> bool:
    """Whether a task run whose parent is `parent_id` lies anywhere under `ancestor_id` (`by_id`: the execution's
    task runs by id; a parent missing from it ends the walk)."""
    while parent_id is not None:
        if parent_id == ancestor_id:
            return True
        parent = by_id.get(parent_id)
        parent_id = parent.parent_id if parent is not None else None
    return False


def waiting_task_runs(runs: Sequence[TaskRunRow]) -> list[TaskRunRow]:
    """The PAUSED task runs that wait themselves (a Pause, an Approval, a timer), in the order given.

    A Kestra 2 Loop is PAUSED while a task of one of its iterations is (its iteration is a sub-execution,
    paused); such an enclosing run is not something to resume or show as waiting: it runs again when its
    paused descendant does (`record_transition`).
    """
    by_id = {r.id: r for r in runs}
    enclosing: set[str] = set()
    for run in runs:
        if State(run.state) is not State.PAUSED:
            continue
        parent = by_id.get(run.parent_id) if run.parent_id else None
        while parent is not None:
            enclosing.add(parent.id)
            parent = by_id.get(parent.parent_id) if parent.parent_id else None
    return [r for r in runs if State(r.state) is State.PAUSED and r.id not in enclosing]
