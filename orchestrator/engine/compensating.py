"""Compensation at run time: its audit events, and what a compensation task sees of the task run it undoes.

The order and the joins are the core's (`core/compensation.py`, `plan.with_compensation`); this module writes
the `compensation.started` / `compensation.ended` events on the execution's chain, in the join's transaction.
Each compensation task run is audited like any task run (`task_run.*`, its subject the compensation's id).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from orchestrator import store
from orchestrator.core import compensation
from orchestrator.core.errors import Conflict
from orchestrator.core.flow import Flow
from orchestrator.core.plan import ChildLists, Snapshot, compensation_state
from orchestrator.store.database import Session
from orchestrator.store.tables import ExecutionRow, TaskRunRow


def _steps(lists: ChildLists, snap: Snapshot) -> list[dict[str, Any]]:
    steps = []
    for slot in lists.compensation:
        undone = snap.task_runs.get(slot.undoes or "")
        steps.append({"task": slot.task.id, "undoes": slot.undoes, "undoesTask": undone.task_id if undone else None})
    return steps


def started(session: Session, execution: ExecutionRow, lists: ChildLists, snap: Snapshot, *, actor: str) -> None:
    """Audit the start of the compensation (once: a later join that goes on with it writes nothing)."""
    if compensation_state(lists, snap) is not None:
        return
    payload = {"reason": "killed" if execution.state == "KILLING" else "failed", "steps": _steps(lists, snap)}
    store.append_audit(session, execution.id, actor=actor, action="compensation.started", subject=None, payload=payload)


def ended(session: Session, execution: ExecutionRow, lists: ChildLists, snap: Snapshot, *, actor: str) -> None:
    """Audit how the compensation ended, when one ran, as the execution ends."""
    state = compensation_state(lists, snap)
    if state is None:
        return
    steps = _steps(lists, snap)
    for step in steps:
        run = snap.get(step["task"], step["undoes"])
        step["state"] = str(run.state) if run else None  # None: not run, a step before it failed
        step["taskRunId"] = run.id if run else None
    payload = {"state": str(state), "steps": steps}
    store.append_audit(session, execution.id, actor=actor, action="compensation.ended", subject=None, payload=payload)


def undone_run(session: Session, flow: Flow, row: TaskRunRow) -> TaskRunRow | None:
    """The task run a compensation task run undoes: the nearest ancestor whose task has `compensate`."""
    parent_id = row.parent_id
    while parent_id is not None:
        parent = store.loaded_task_run(session, parent_id)
        if parent is None:
            return None
        if flow.task(parent.task_id).compensate:
            return parent
        parent_id = parent.parent_id
    return None


def variables(session: Session, flow: Flow, row: TaskRunRow) -> dict[str, Any] | None:
    """`{{ compensation.* }}` of a compensation task run: the undone run's task, id, value and outputs."""
    undone = undone_run(session, flow, row)
    if undone is None:
        return None
    return {
        "task": undone.task_id,
        "taskRunId": undone.id,
        "value": undone.value,
        "iteration": undone.iteration,
        "state": undone.state,
        "outputs": undone.outputs or {},
    }


def restart_scope(
    session: Session,
    flow: Flow,
    execution: ExecutionRow,
    runs: Sequence[TaskRunRow],
    failed: Sequence[TaskRunRow],
    *,
    actor: str,
) -> list[TaskRunRow]:
    """What a Restart re-runs when compensation ran: the failed compensation runs only (empty: none ran).

    The Saga was unwinding when it stopped: re-running the failed step it undoes would redo what is being undone,
    so that step stays failed; the rest of the compensation follows, then `finally` (its runs are discarded here so
    it runs again). An execution whose compensation completed is refused: it would go on from undone steps.
    """
    undo = [r for r in failed if compensation.is_compensation(flow, r.task_id)]
    if not undo:
        if any(compensation.is_compensation(flow, r.task_id) for r in runs):
            raise Conflict(
                f"execution {execution.id} was compensated (what it had done is undone): restarting it would go on "
                "from undone steps; replay it instead"
            )
        return []
    discard_closing_phases(session, flow, runs, actor=actor)
    return undo


def discard_closing_phases(session: Session, flow: Flow, runs: Sequence[TaskRunRow], *, actor: str) -> None:
    """Discard the flow's `finally` and `afterExecution` task runs (and all under them): a compensation sent back
    to run (Restart, a Flower re-apply) is followed by the rest of the compensation, then by them again."""
    names = {t.id for t in (*flow.finally_, *flow.after_execution)}
    discard = [r for r in runs if r.parent_id is None and r.task_id in names]
    for run in runs:  # `runs` come in creation order: a child after its parent
        if run.parent_id in {d.id for d in discard} and run not in discard:
            discard.append(run)
    for run in discard:
        store.discard_task_run(session, run, actor=actor)
