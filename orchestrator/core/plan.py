"""What remains to run: pure decisions over a flow and its execution's task runs.

`remaining(flow, snapshot)` is the one compiler front end. It serves the first dispatch, resume after
a pause, restart, a due retry, a retry re-applied from Flower and recovery after a crash: it walks
the flow tree, skips what ended well, re-sends what is in flight (duplicates are absorbed by the
idempotent claim) and stops a sequence at its first failure, which the parent's join then handles.
The compiler turns the returned plan into Celery signatures; this module knows nothing of Celery.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from orchestrator.core.flow import Flow, TaskSpec
from orchestrator.core.ids import task_run_id
from orchestrator.core.states import State, worst_of
from orchestrator.core.tasktypes import CATALOGUE

_OK = frozenset({State.SUCCESS, State.WARNING, State.SKIPPED})
_BAD = frozenset({State.FAILED, State.KILLED, State.CANCELLED, State.RETRIED})


@dataclass(frozen=True)
class TaskRunView:
    """What the planner needs to know of one existing task run."""

    id: str
    task_id: str
    parent_id: str | None
    iteration: int | None
    state: State
    attempt: int  #: number of the current (last) attempt, 1-based
    decision: Mapping[str, object] = field(default_factory=dict)  #: a flowable's recorded choice (branch, values)
    retry_at: datetime | None = None  #: when the next attempt is due, for RETRYING


@dataclass(frozen=True)
class Snapshot:
    """An execution's task runs, by id, as read in one transaction."""

    execution_id: str
    task_runs: Mapping[str, TaskRunView]
    now: datetime

    def get(self, task_id: str, parent_id: str | None, iteration: int | None = None) -> TaskRunView | None:
        return self.task_runs.get(task_run_id(self.execution_id, task_id, parent_id, iteration))

    def children(self, parent_id: str | None) -> list[TaskRunView]:
        return [t for t in self.task_runs.values() if t.parent_id == parent_id]


# ---- plan nodes ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """Claim and run one task run: a leaf on its pool, or a flowable that expands itself (`enter`)."""

    execution_id: str
    task_id: str
    parent_id: str | None
    iteration: int | None
    attempt: int
    pool: str
    enter: bool  #: True for flowables: decide, then replace with the compiled body


@dataclass(frozen=True)
class Join:
    """Finish a flowable (or the execution when `parent_id` is None) once its children ended."""

    execution_id: str
    parent_id: str | None


@dataclass(frozen=True)
class Chain:
    items: tuple[PlanNode, ...]


@dataclass(frozen=True)
class Fanout:
    """Run `items` concurrently, then `join` (a Celery chord)."""

    items: tuple[PlanNode, ...]
    join: Join


PlanNode = Run | Join | Chain | Fanout


# ---- the tree of child lists ----------------------------------------------------------------------


@dataclass(frozen=True)
class ChildLists:
    """The three phases of a parent: its main tasks, its `errors` and its `finally` tasks."""

    main: tuple[TaskSpec, ...]
    errors: tuple[TaskSpec, ...]
    finally_: tuple[TaskSpec, ...]
    parallel: bool


def _enabled(tasks: Sequence[TaskSpec]) -> tuple[TaskSpec, ...]:
    # Kestra drops disabled tasks from the flow before running it: no task run, no state.
    return tuple(t for t in tasks if not t.disabled)


def child_lists(flow: Flow, parent: TaskSpec | None, decision: Mapping[str, object]) -> ChildLists:
    """The children of the execution root (parent None) or of a flowable task, given its decision."""
    if parent is None:
        return ChildLists(_enabled(flow.tasks), _enabled(flow.errors), _enabled(flow.finally_), parallel=False)
    branch = str(decision.get("branch", "tasks"))
    main = parent.branches.get(branch, ())
    return ChildLists(
        _enabled(main),
        _enabled(parent.branches.get("errors", ())),
        _enabled(parent.branches.get("finally", ())),
        parallel=parent.type == "Parallel",
    )


def _is_flowable(task: TaskSpec) -> bool:
    return CATALOGUE[task.type].flowable


def _pool(task: TaskSpec) -> str:
    return task.worker_group or str(CATALOGUE[task.type].pool)


# ---- remaining work -----------------------------------------------------------------------------


def remaining(flow: Flow, snapshot: Snapshot) -> PlanNode | None:
    """The plan of everything that can be dispatched now; None when nothing can (all done or waiting)."""
    return _parent_plan(flow, None, None, snapshot)


def inside(flow: Flow, spec: TaskSpec, run: TaskRunView, snapshot: Snapshot) -> PlanNode | None:
    """The remaining plan inside an entered flowable (its current phase, then its join)."""
    return _parent_plan(flow, spec, run, snapshot)


def phase(
    flow: Flow, tasks: tuple[TaskSpec, ...], parent_id: str | None, parallel: bool, snapshot: Snapshot
) -> PlanNode | None:
    """The plan of one phase's children (what a join starts), ending with the parent's join again."""
    return _phase_plan(flow, tasks, parent_id, parallel, snapshot, Join(snapshot.execution_id, parent_id))


def _parent_plan(flow: Flow, spec: TaskSpec | None, run: TaskRunView | None, snap: Snapshot) -> PlanNode | None:
    parent_id = run.id if run else None
    lists = child_lists(flow, spec, run.decision if run else {})
    current = current_phase(lists, parent_id, snap)
    join = Join(snap.execution_id, parent_id)
    return _phase_plan(flow, current, parent_id, lists.parallel and current is lists.main, snap, join)


def current_phase(lists: ChildLists, parent_id: str | None, snap: Snapshot) -> tuple[TaskSpec, ...]:
    """Which child list is being worked on: finally once started, else errors once started, else main.

    A phase that has not started yet is started by the parent's join (`decide_join`), not here.
    """
    started = {t.task_id for t in snap.children(parent_id)}
    if any(t.id in started for t in lists.finally_):
        return lists.finally_
    if any(t.id in started for t in lists.errors):
        return lists.errors
    return lists.main


def _phase_plan(
    flow: Flow,
    tasks: tuple[TaskSpec, ...],
    parent_id: str | None,
    parallel: bool,
    snap: Snapshot,
    join: Join,
) -> PlanNode | None:
    items: list[PlanNode] = []
    for task in tasks:
        run = snap.get(task.id, parent_id)
        if run is None:
            items.append(_entry(task, parent_id, snap, attempt=1))
            continue
        if run.state in _OK:
            continue
        if run.state in _BAD:
            if parallel:
                continue
            break  # a sequence stops at its first failure; the join runs errors/finally
        node = _in_flight(flow, task, run, snap)
        if node is None:
            if parallel:
                continue
            return None  # blocked (paused, retry not due): nothing after it may start yet
        items.append(node)
    if parallel:
        return Fanout(tuple(items), join) if items else join
    return Chain((*items, join))


def _entry(task: TaskSpec, parent_id: str | None, snap: Snapshot, *, attempt: int) -> Run:
    return Run(snap.execution_id, task.id, parent_id, None, attempt, _pool(task), enter=_is_flowable(task))


def _in_flight(flow: Flow, task: TaskSpec, run: TaskRunView, snap: Snapshot) -> PlanNode | None:
    if run.state is State.RETRYING:
        if run.retry_at is not None and run.retry_at > snap.now:
            return None
        return _entry(task, run.parent_id, snap, attempt=run.attempt + 1)
    if run.state is State.PAUSED:
        return None
    if _is_flowable(task) and run.decision:
        # Entered and decided: continue inside it rather than deciding again.
        return _parent_plan(flow, task, run, snap)
    # CREATED/RUNNING/RESTARTED: send again; the claim lets through only one live runner.
    return _entry(task, run.parent_id, snap, attempt=run.attempt)


# ---- joins --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Wait:
    """Some child is still going; someone else joins later."""


@dataclass(frozen=True)
class StartPhase:
    """Run these children (a phase, or the rest of the current one), then join again."""

    tasks: tuple[TaskSpec, ...]
    parallel: bool


@dataclass(frozen=True)
class Complete:
    """Every phase ended: the parent takes this state."""

    state: State


JoinDecision = Wait | StartPhase | Complete


def decide_join(lists: ChildLists, parent_id: str | None, snap: Snapshot) -> JoinDecision:
    """What a join does, from the children's states alone."""
    children = {t.task_id: t for t in snap.children(parent_id)}
    if any(not c.state.is_terminal for c in children.values()):
        return Wait()

    def states(tasks: tuple[TaskSpec, ...]) -> list[State]:
        return [children[t.id].state for t in tasks if t.id in children]

    def missing(tasks: tuple[TaskSpec, ...]) -> bool:
        return any(t.id not in children for t in tasks)

    main_failed = any(s.is_failure for s in states(lists.main))
    in_errors = any(t.id in children for t in lists.errors)
    in_finally = any(t.id in children for t in lists.finally_)

    if not in_errors and not in_finally:
        if not main_failed and missing(lists.main):
            return StartPhase(lists.main, lists.parallel)  # a broken chain: finish the main phase
        if main_failed and lists.errors:
            return StartPhase(lists.errors, False)
    elif in_errors and not in_finally:
        errors_failed = any(s.is_failure for s in states(lists.errors))
        if not errors_failed and missing(lists.errors):
            return StartPhase(lists.errors, False)
    if lists.finally_ and not in_finally:
        return StartPhase(lists.finally_, False)
    if in_finally and missing(lists.finally_) and not any(s.is_failure for s in states(lists.finally_)):
        return StartPhase(lists.finally_, False)
    return Complete(worst_of(c.state for c in children.values()))
