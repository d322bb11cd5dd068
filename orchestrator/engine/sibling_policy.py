"""Performing a flowable's sibling rule at claim time: once a child of a Parallel, Dag or ForEach failed, STOP and
FAIL_FAST start no new child (kestra-io/kestra#15366). The rule is `core/child_policy.sibling_rule`
(`SiblingRule.holds_new`); its other half, interrupting the siblings that already run, is `child_failure.py`.

"New" is what Kestra would not have created yet: it creates the first slot of each concurrent lane together (every
iteration of a `concurrencyLimit: 0` ForEach, every task of a Parallel), so under STOP those still run, as the test
flows expect (each-error: three failing iterations, three task runs). Under FAIL_FAST such a sibling is Kestra's
too, and `child_failure` kills what runs; the later slots of a lane (the next iteration, the next task of one) are
the ones never started here. CONTINUE holds nothing back: the planner (`core/plan.py`) keeps its lanes going.
"""

from __future__ import annotations

from orchestrator import store
from orchestrator.core.child_policy import sibling_rule
from orchestrator.core.flow import Flow
from orchestrator.core.plan import child_lists
from orchestrator.core.states import State
from orchestrator.engine.values import TaskRunCoordinates
from orchestrator.store.database import Session

__all__ = ["held_back"]


def held_back(session: Session, flow: Flow, at: TaskRunCoordinates) -> bool:
    """Whether the task run `at` (not created yet) must not start: its parent's policy stops new children and one
    of its main children failed. Its `errors` and `finally`, which run because of that failure, always start."""
    if at.parent_id is None:
        return False
    parent = store.loaded_task_run(session, at.parent_id)
    if parent is None:
        return False
    spec = flow.task(parent.task_id)
    if not sibling_rule(spec).holds_new:
        return False
    main = {task.id for task in spec.branches.get("tasks", ())}
    if at.task_id not in main:
        return False
    children = (r for r in store.task_runs_of(session, at.execution_id) if r.parent_id == parent.id)
    if not any(r.task_id in main and State(r.state).is_failure for r in children):
        return False
    lanes = child_lists(flow, spec, parent.decision or {}).main
    first_wave = {(lane[0].task.id, lane[0].iteration) for lane in lanes if lane}
    return (at.task_id, at.iteration) not in first_wave
