"""Kestra's execution.Exit and execution.Kill: end the running execution now, in the state the task names.

As Kestra's `Exit.update`, the Exit task run and each of its parents take the exit state and the execution
ends in it. Kestra leaves other running task runs alone unless the state is KILLED; here they are KILLED in
every case (their Celery tasks revoked), so nothing keeps running in an execution that has ended.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING

from orchestrator import store
from orchestrator.core.errors import Conflict, NotFound
from orchestrator.core.states import TERMINAL, State
from orchestrator.engine import flows, operations
from orchestrator.engine.housekeeping import Housekeeping
from orchestrator.engine.values import ClaimedTaskRun

if TYPE_CHECKING:
    from orchestrator.engine.facade import Engine

logger = logging.getLogger(__name__)

#: Kestra's ExitState names and the states they end in.
EXIT_STATES = {
    "SUCCESS": State.SUCCESS,
    "WARNING": State.WARNING,
    "KILLED": State.KILLED,
    "FAILED": State.FAILED,
    "CANCELED": State.CANCELLED,
    "CANCELLED": State.CANCELLED,
}


def exit_execution(engine: Engine, claimed: ClaimedTaskRun, final: State, *, kill_children: bool = True) -> None:
    """End `claimed`'s execution in `final`; its task run and parents end in `final` too. `kill_children`
    False leaves its running subflow executions alone (Kestra's Kill without `propagateKill`)."""
    at = claimed.coordinates
    actor = f"task:{at.execution_id}/{at.task_id}"
    now = store.utcnow()
    celery_ids: list[str] = []
    with engine.transaction() as session:
        execution = store.lock_execution(session, at.execution_id)
        if execution is None:
            raise NotFound("execution", at.execution_id)
        if State(execution.state) in TERMINAL:
            raise Conflict(f"execution {at.execution_id} has already ended ({execution.state})")
        flows.flow_of_execution(engine, session, execution)  # marks the flow's concurrency, so the exit frees its slot
        runs = {run.id: run for run in store.task_runs_of(session, at.execution_id)}
        lineage: set[str] = set()
        current = runs.get(at.task_run_id)
        while current is not None:
            lineage.add(current.id)
            current = runs.get(current.parent_id) if current.parent_id else None
        for run in runs.values():
            if State(run.state) in TERMINAL:
                continue
            state = final if run.id in lineage else State.KILLED
            if run.id not in lineage and State(run.state) is State.RUNNING and run.attempts:
                celery_ids.extend(filter(None, [run.attempts[-1].get("celeryTaskId")]))
            store.record_transition(
                session,
                run,
                state,
                actor=actor,
                values={
                    "attempts": store.close_attempt(run.attempts, state, now),
                    "claim_owner": None,
                    "retry_at": None,
                },
            )
        store.record_transition(session, execution, final, actor=actor, payload={"exit": str(final)})
        children = store.running_children(session, at.execution_id) if kill_children else []
    if kill_children:  # and those started without waiting, which Kestra's kill cascade reaches too
        keeper = Housekeeping(engine.settings.tenant, engine.sessions, engine.settings.data_dir)
        children = list(dict.fromkeys([*children, *keeper.started_children(at.execution_id)]))
    for child_id in children:
        with contextlib.suppress(Conflict):
            operations.kill(engine, child_id, actor=actor)
    if celery_ids:
        try:
            engine.celery.control.revoke(celery_ids, terminate=True, signal="SIGTERM")
        except Exception:
            logger.warning("could not revoke %s", celery_ids, exc_info=True)
