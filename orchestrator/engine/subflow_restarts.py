"""A restarted execution's Subflow or ForEachItem task restarts the child executions that failed.

Kestra's ExecutableUtils.subflowExecution: in an execution being restarted, an executable task whose
`restartBehavior` is RETRY_FAILED (the default) looks for the child execution it started before (a Subflow: its
child; a ForEachItem: the one child of each batch, by the trigger's task run iteration). A child that FAILED is
restarted in place, so its failed task runs get their next attempt (ForEachItemCaseTest#restartForEachItem: a
child failing on its first attempt only succeeds on the restart); a batch whose child did not fail keeps it as it
ended. NEW_EXECUTION, or a batch without exactly one earlier child, starts new children as on the first run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from orchestrator import store
from orchestrator.core.errors import NoTaskToRestart
from orchestrator.core.states import State
from orchestrator.engine import operations

if TYPE_CHECKING:
    from orchestrator.core.flow import TaskSpec
    from orchestrator.engine.facade import Engine
    from orchestrator.store.database import Session
    from orchestrator.store.tables import ExecutionRow, TaskRunRow


def earlier_children(
    session: Session, parent: ExecutionRow, row: TaskRunRow, task: TaskSpec, *, single: bool
) -> dict[int, ExecutionRow]:
    """The children an earlier attempt of `row` started that this one may take over, by batch index."""
    behavior = str(task.properties.get("restartBehavior") or "RETRY_FAILED")
    if parent.restarts == 0 or behavior != "RETRY_FAILED":
        return {}
    children = store.child_executions(session, row.id)
    if single:  # a Subflow takes over a failed child only; otherwise it starts a new one
        return {0: children[-1]} if children and State(children[-1].state) is State.FAILED else {}
    by_batch: dict[int, list[ExecutionRow]] = {}
    for child in children:
        batch = ((child.trigger or {}).get("variables") or {}).get("taskRunIteration")
        if isinstance(batch, int):
            by_batch.setdefault(batch, []).append(child)
    return {batch: found[0] for batch, found in by_batch.items() if len(found) == 1}


def take_over(engine: Engine, session: Session, child: ExecutionRow, *, actor: str) -> bool | None:
    """Keep or restart an earlier child, in the caller's transaction: True when the restarted child must be
    dispatched once committed, False when it needs nothing (it ended well, or waits QUEUED under its flow's
    concurrency), None when it cannot be taken over and a new child must start instead."""
    if State(child.state) is not State.FAILED:
        return False if State(child.state).is_terminal and not State(child.state).is_failure else None
    locked = store.lock_execution(session, child.id)
    if locked is None:
        return None
    try:
        return operations.restart_locked(engine, session, locked, actor=actor)
    except NoTaskToRestart:  # failed before any task ran (its inputs, say): nothing to send back
        return None
