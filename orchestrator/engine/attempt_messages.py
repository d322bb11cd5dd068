"""The message a task run attempt was claimed from, rebuilt from the database for `chorus retry`.

A chain link stores no Celery result and results expire (CHORUS_RESULT_EXPIRES_S), so the result backend may
no longer know a message's name, kwargs and queue. Each attempt records the `celeryTaskId` that claimed it:
from that task run's coordinates and its task's type the compiler's `Run` node is rebuilt, which compiles to
the message the planner would send for that attempt (a `run_inline` of that one task run, an
`enter_task_run` for a flowable, else a `run_task_run` to its pool's queue).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from orchestrator import store
from orchestrator.core.errors import ChorusError
from orchestrator.core.plan import Run, run_of
from orchestrator.core.states import State
from orchestrator.engine import flows
from orchestrator.store.database import read_only
from orchestrator.store.tables import TaskRunRow

if TYPE_CHECKING:
    from orchestrator.engine.facade import Engine

_FAILED = (State.FAILED, State.KILLED)


def run_of_celery_task(engine: Engine, celery_task_id: str) -> Run | None:
    """The task run attempt the Celery message `celery_task_id` claimed, as a plan node; None when no
    attempt records that id (an unknown id, or a task run the controller ran in its own transaction)."""
    with read_only(engine.sessions) as session:
        rows = store.task_runs_of_celery_task(session, celery_task_id)
        chosen = _chosen(rows, celery_task_id)
        if chosen is None:
            return None
        row, attempt = chosen
        execution = store.get_execution(session, row.execution_id)
        if execution is None or execution.tenant != engine.settings.tenant:
            return None
        try:
            task = flows.flow_of_execution(engine, session, execution).task(row.task_id)
        except (ChorusError, KeyError):
            return None  # its flow revision no longer names the task: nothing a message could claim
        return run_of(row.execution_id, task, row.parent_id, row.iteration, attempt)


def _chosen(rows: Sequence[TaskRunRow], celery_task_id: str) -> tuple[TaskRunRow, int] | None:
    """The task run (and attempt number) to send again among those one message claimed.

    A WorkingDirectory's children record their parent's message: the parent is what that message entered.
    A `run_inline` message claims several siblings: the one whose current attempt failed is what the operator
    retries (after its re-apply, the same id names the next failed sibling), else the last claimed.
    """
    ids = {row.id for row in rows}
    found = [(row, _attempt_of(row, celery_task_id)) for row in rows if row.parent_id not in ids]
    current = [(row, attempt) for row, attempt in found if attempt == row.attempt]
    failed = [(row, attempt) for row, attempt in current if State(row.state) in _FAILED]
    if failed:
        return failed[0]
    if current:
        return current[-1]
    return found[-1] if found else None


def _attempt_of(row: TaskRunRow, celery_task_id: str) -> int:
    """The number of the (last) attempt of `row` this message claimed: attempts are appended one per number,
    the last being `row.attempt`."""
    last = max(i for i, record in enumerate(row.attempts) if record.get("celeryTaskId") == celery_task_id)
    return row.attempt - (len(row.attempts) - 1 - last)
