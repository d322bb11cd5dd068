"""Declarative compensation (a Chorus extension): which `compensate` tasks undo which task runs, and in what order.

A task's `compensate:` list is a Saga's undo step. When an execution fails (after its `errors` branch) or is
killed with compensation, every task run of such a task that had succeeded is undone: its compensation tasks
run as children of the task run they undo (so their ids are unique per undone run, a ForEach iteration's
included, and they can read its outputs), one undone run after the other in the reverse order the runs
completed. Then the flow's `finally` runs. Nothing here exists for a flow without `compensate`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from orchestrator.core.flow import Flow, TaskSpec
from orchestrator.core.states import State

if TYPE_CHECKING:
    from orchestrator.core.plan import TaskRunView

#: The states of a task run that did its work, and so has something to undo.
_DONE = frozenset({State.SUCCESS, State.WARNING})
_NEVER = datetime.min.replace(tzinfo=UTC)


def compensated_tasks(flow: Flow) -> dict[str, tuple[TaskSpec, ...]]:
    """Every task with a `compensate` list, by id."""
    return {t.id: t.compensate for t in flow.iter_tasks() if t.compensate}


def compensation_task_ids(flow: Flow) -> frozenset[str]:
    """The ids of every task inside a `compensate` list, at any depth."""
    return frozenset(c.id for t in flow.iter_tasks() for top in t.compensate for c in top.iter_tasks())


def is_compensation(flow: Flow, task_id: str) -> bool:
    """Whether a task is (or is inside) some task's `compensate` list."""
    return task_id in compensation_task_ids(flow)


def steps(flow: Flow, runs: Iterable[TaskRunView]) -> tuple[tuple[TaskSpec, str], ...]:
    """The compensation to run, in order: (compensation task, id of the task run it undoes).

    Undone runs go latest-completed first (a Saga unwinds its steps backwards); a run's own `compensate`
    tasks keep their YAML order. The order is read from task runs that no longer change (they ended), so
    every join and dispatch computes the same sequence.
    """
    by_task = compensated_tasks(flow)
    if not by_task:
        return ()
    inside = compensation_task_ids(flow)
    # `runs` come in creation order: it breaks ties between runs ended by one transaction (one clock reading).
    done = [(r.updated_at or _NEVER, i, r) for i, r in enumerate(runs) if r.task_id in by_task and r.state in _DONE]
    done = [d for d in done if d[2].task_id not in inside]
    done.sort(key=lambda d: (d[0], d[1]), reverse=True)
    return tuple((task, run.id) for _, _, run in done for task in by_task[run.task_id])
