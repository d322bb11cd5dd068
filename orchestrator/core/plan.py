"""What remains to run: pure decisions over a flow and its execution's task runs.

`remaining(flow, snapshot)` is the one compiler front end. It serves the first dispatch, resume after
a pause, restart, a due retry, a retry re-applied from Flower and recovery after a crash: it walks
the flow tree, skips what ended well, re-sends what is in flight (duplicates are absorbed by the
idempotent claim) and stops a sequence at its first failure, which the parent's join then handles.
The compiler turns the returned plan into Celery signatures; this module knows nothing of Celery.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from orchestrator.core import compensation
from orchestrator.core.child_policy import ChildFailurePolicy, policy_of
from orchestrator.core.decision import TaskRunDecision
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
    decision: TaskRunDecision = field(default_factory=lambda: TaskRunDecision())  #: a flowable's recorded choice
    retry_at: datetime | None = None  #: when the next attempt is due, for RETRYING
    updated_at: datetime | None = None  #: the last state change (a terminal run's end): orders compensation


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
    inline: bool = False  #: a pure control task (TaskType.inline) on the control pool: batched with its neighbours


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


def has_runs(node: PlanNode) -> bool:
    """Whether a plan starts any task run (a plan of joins alone makes no progress)."""
    if isinstance(node, Run):
        return True
    if isinstance(node, Chain):
        return any(has_runs(item) for item in node.items)
    if isinstance(node, Fanout):
        return any(has_runs(item) for item in node.items)
    return False


# ---- the tree of child lists ----------------------------------------------------------------------


@dataclass(frozen=True)
class Slot:
    """One child task run to be: a task, and the loop iteration it belongs to (None outside loops)."""

    task: TaskSpec
    iteration: int | None = None
    #: A Loop iteration with `transmitFailed: false`, or a child under `childFailurePolicy: CONTINUE`: its failure
    #: stops only the rest of its unit (its iteration, or itself outside loops), the lane goes on.
    isolated: bool = False
    #: A compensation: the task run it undoes, which is its parent (instead of the phase's parent).
    undoes: str | None = None


#: Slots that run one after the other. A parent's main phase is one or more lanes running side by side:
#: a sequence is one lane, a Parallel one lane per task, a ForEach lanes of whole iterations.
Lane = tuple[Slot, ...]


@dataclass(frozen=True)
class ChildLists:
    """The phases of a parent: its main lanes, its `errors` and `finally` tasks, and (the flow's root only)
    `afterExecution`, which runs once the state is decided and does not change it."""

    main: tuple[Lane, ...]
    errors: tuple[TaskSpec, ...]
    finally_: tuple[TaskSpec, ...]
    after: tuple[TaskSpec, ...] = ()
    #: The main lanes are Loop iterations whose failures stay theirs (`transmitFailed: false`).
    isolated: bool = False
    #: `childFailurePolicy: CONTINUE`: every unit of the main lanes runs despite a failed one, whose failure still
    #: fails the parent once all ended.
    continues: bool = False
    #: The parent failed itself (a Pause whose `timeout` passed): no main phase, `errors` then `finally`.
    failed: bool = False
    #: The flow's root only: the compensation of the succeeded task runs, run when the main phase failed,
    #: after `errors` and before `finally` (`with_compensation`).
    compensation: Lane = ()
    #: A Loop whose `breakWhen` held: its iterations not started yet are no longer part of its main phase.
    broken: bool = False

    @property
    def main_slots(self) -> tuple[Slot, ...]:
        return tuple(slot for lane in self.main for slot in lane)


def _enabled(tasks: Sequence[TaskSpec]) -> tuple[TaskSpec, ...]:
    # Kestra drops disabled tasks from the flow before running it: no task run, no state.
    return tuple(t for t in tasks if not t.disabled)


def _spread(slots: Sequence[Lane], width: int) -> tuple[Lane, ...]:
    """Deal units of work over `width` lanes (0: one lane each), keeping each unit's order."""
    if width <= 0 or width >= len(slots):
        return tuple(slots)
    lanes: list[list[Slot]] = [[] for _ in range(width)]
    for index, unit in enumerate(slots):
        lanes[index % width].extend(unit)
    return tuple(tuple(lane) for lane in lanes)


def _int(value: object, default: int) -> int:
    try:
        return int(value)  # type: ignore[call-overload, no-any-return]
    except (TypeError, ValueError):
        return default


def child_lists(flow: Flow, parent: TaskSpec | None, decision: TaskRunDecision) -> ChildLists:
    """The children of the execution root (parent None) or of a flowable task, given its decision."""
    if parent is None:
        lane = tuple(Slot(t) for t in _enabled(flow.tasks))
        return ChildLists(
            (lane,) if lane else (), _enabled(flow.errors), _enabled(flow.finally_), _enabled(flow.after_execution)
        )
    errors = _enabled(parent.branches.get("errors", ()))
    finally_ = _enabled(parent.branches.get("finally", ()))
    if decision.get("timed_out"):
        return ChildLists((), errors, finally_, failed=True)
    branch = str(decision.get("branch", "tasks"))
    tasks = _enabled(parent.branches.get(branch, ()))
    loop = decision.get("loop")
    if isinstance(loop, int):  # WaitFor / LoopUntil: only the current iteration's tasks
        lane = tuple(Slot(t, loop) for t in tasks)
        return ChildLists((lane,) if lane else (), errors, finally_)
    values = decision.get("values")
    goes_on = policy_of(parent) is ChildFailurePolicy.CONTINUE
    if isinstance(values, list):
        isolated = parent.type == "Loop" and str(parent.properties.get("transmitFailed", True)).lower() == "false"
        lanes = _iteration_lanes(parent, tasks, len(values), isolated or goes_on)
        broken = parent.type == "Loop" and bool(decision.get("broken"))
        return ChildLists(lanes, errors, finally_, isolated=isolated, broken=broken, continues=goes_on)
    if parent.type == "Parallel":
        width = _int(parent.properties.get("concurrent"), 0)
        return ChildLists(
            _spread([(Slot(t, None, goes_on),) for t in tasks], width), errors, finally_, continues=goes_on
        )
    if parent.type == "Dag":
        # Kestra's Dag starts every task whose dependencies have ended, side by side (`concurrent` 0 is no
        # limit): one lane per task; a lane waits for its dependencies (`_lane_plan`) and the join that ends
        # a wave starts the tasks it made ready.
        lanes = tuple((Slot(t, None, goes_on),) for t in _topological(tasks))
        return ChildLists(lanes, errors, finally_, continues=goes_on)
    lane = tuple(Slot(t, None, goes_on) for t in tasks)
    return ChildLists((lane,) if lane else (), errors, finally_, continues=goes_on)


def with_compensation(flow: Flow, lists: ChildLists, snap: Snapshot) -> ChildLists:
    """The root's child lists with the compensation lane of what the execution has done so far."""
    steps = compensation.steps(flow, snap.task_runs.values())
    if not steps:
        return lists
    return dataclasses.replace(lists, compensation=tuple(Slot(task, undoes=run_id) for task, run_id in steps))


def killed_lists(lists: ChildLists) -> ChildLists:
    """The root's phases once killed with compensation: no more main work, no `errors`, no `finally` (a kill runs
    neither), the compensation alone."""
    return dataclasses.replace(lists, main=(), errors=(), finally_=(), after=(), failed=True)


def _topological(tasks: tuple[TaskSpec, ...]) -> tuple[TaskSpec, ...]:
    """A Dag's tasks in an order that respects `dependsOn` (the parser has refused cycles)."""
    ordered: list[TaskSpec] = []
    done: set[str] = set()
    pending = list(tasks)
    while pending:
        ready = [t for t in pending if all(d in done for d in t.depends_on)] or pending[:1]
        for task in ready:
            ordered.append(task)
            done.add(task.id)
            pending.remove(task)
    return tuple(ordered)


def _iteration_lanes(
    parent: TaskSpec, tasks: tuple[TaskSpec, ...], count: int, isolated: bool = False
) -> tuple[Lane, ...]:
    if parent.type == "EachParallel":
        # Every task of every iteration side by side, at most `concurrent` at a time.
        width = _int(parent.properties.get("concurrent"), 0)
        return _spread([(Slot(t, i),) for i in range(count) for t in tasks], width)
    # EachSequential: one at a time; ForEach and Loop: `concurrencyLimit` iterations at a time, 0 meaning no
    # limit (ForEach's default is 1, Loop's is 0).
    default = 0 if parent.type == "Loop" else 1
    width = 1 if parent.type == "EachSequential" else _int(parent.properties.get("concurrencyLimit"), default)
    units = [tuple(Slot(t, i, isolated) for t in tasks) for i in range(count)]
    return _spread([u for u in units if u], width)


def children_side_by_side(parent: TaskSpec) -> bool:
    """Whether a flowable's children are side by side in Kestra's graph (none is a successor of another).

    A replay from one of them keeps the others as they ended (Kestra's `GraphUtils.successors` in
    `ExecutionService.replay`); under any other parent the later siblings are successors and run again.
    """
    return parent.type in ("Parallel", "EachParallel")


def _is_flowable(task: TaskSpec) -> bool:
    return CATALOGUE[task.type].flowable


def pool_of(task: TaskSpec) -> str:
    """The pool (Celery queue) whose workers run `task`: its workerGroup, else its type's pool."""
    return task.worker_group or str(CATALOGUE[task.type].pool)


# ---- remaining work -----------------------------------------------------------------------------


def remaining(flow: Flow, snapshot: Snapshot, *, killed: bool = False) -> PlanNode | None:
    """The plan of everything that can be dispatched now; None when nothing can (all done or waiting).

    `killed`: the execution is being killed with compensation: only its compensation remains.
    """
    return _parent_plan(flow, None, None, snapshot, killed=killed)


def inside(flow: Flow, spec: TaskSpec, run: TaskRunView, snapshot: Snapshot) -> PlanNode | None:
    """The remaining plan inside an entered flowable (its current phase, then its join)."""
    return _parent_plan(flow, spec, run, snapshot)


def phase(flow: Flow, lanes: tuple[Lane, ...], parent_id: str | None, snapshot: Snapshot) -> PlanNode | None:
    """The plan of one phase's lanes (what a join starts), ending with the parent's join again."""
    return _lanes_plan(flow, lanes, parent_id, snapshot, Join(snapshot.execution_id, parent_id))


def started_only(lists: ChildLists, parent_id: str | None, snap: Snapshot) -> ChildLists:
    """A broken Loop's children without the iterations that had not started when it broke."""
    if not lists.broken:
        return lists
    started = {c.iteration for c in snap.children(parent_id)}
    lanes = (tuple(s for s in lane if s.iteration in started) for lane in lists.main)
    return dataclasses.replace(lists, main=tuple(lane for lane in lanes if lane))


def _parent_plan(
    flow: Flow, spec: TaskSpec | None, run: TaskRunView | None, snap: Snapshot, *, killed: bool = False
) -> PlanNode | None:
    parent_id = run.id if run else None
    lists = started_only(child_lists(flow, spec, run.decision if run else {}), parent_id, snap)
    if spec is None:
        lists = with_compensation(flow, killed_lists(lists) if killed else lists, snap)
    return phase(flow, current_phase(lists, parent_id, snap), parent_id, snap)


def _sequence(tasks: tuple[TaskSpec, ...]) -> tuple[Lane, ...]:
    return (tuple(Slot(t) for t in tasks),) if tasks else ()


def current_phase(lists: ChildLists, parent_id: str | None, snap: Snapshot) -> tuple[Lane, ...]:
    """Which lanes are being worked on: finally once started, else compensation once started, else errors once
    started, else main.

    A phase that has not started yet is started by the parent's join (`decide_join`), not here.
    """
    started = {t.task_id for t in snap.children(parent_id)}
    if any(t.id in started for t in lists.after):
        return _sequence(lists.after)
    if any(t.id in started for t in lists.finally_):
        return _sequence(lists.finally_)
    if any(snap.get(s.task.id, s.undoes) is not None for s in lists.compensation):
        return (lists.compensation,)
    if any(t.id in started for t in lists.errors):
        return _sequence(lists.errors)
    return lists.main


def _lanes_plan(
    flow: Flow, lanes: tuple[Lane, ...], parent_id: str | None, snap: Snapshot, join: Join
) -> PlanNode | None:
    if len(lanes) <= 1:
        items = _lane_plan(flow, lanes[0] if lanes else (), parent_id, snap)
        return None if items is None else Chain((*items, join))
    branches = []
    for lane in lanes:
        items = _lane_plan(flow, lane, parent_id, snap)
        if items:
            branches.append(items[0] if len(items) == 1 else Chain(tuple(items)))
    return Fanout(tuple(branches), join) if branches else join


def _lane_plan(flow: Flow, lane: Lane, parent_id: str | None, snap: Snapshot) -> list[PlanNode] | None:
    """The links of one lane; None when the lane is blocked (paused, retry not due)."""
    items: list[PlanNode] = []
    failed_units: set[int | str] = set()
    for slot in lane:
        if slot.isolated and _unit_failed(slot, failed_units):
            failed_units.add(_unit(slot.task.id, slot.iteration))
            continue  # the rest of a failed unit (or a Dag task after a failed dependency): the next unit goes on
        owner = slot.undoes or parent_id
        run = snap.get(slot.task.id, owner, slot.iteration)
        if run is None:
            if not _dependencies_done(flow, slot, owner, snap):
                return None  # a Dag task whose dependencies have not all ended well: a later wave starts it
            items.append(_entry(slot, owner, snap, attempt=1))
            continue
        if run.state in _OK:
            continue
        if run.state in _BAD and slot.isolated:
            failed_units.add(_unit(slot.task.id, slot.iteration))
            continue
        if run.state in _BAD:
            break  # a lane stops at its first failure; the parent's join runs errors/finally
        node = _in_flight(flow, slot, run, snap)
        if node is None:
            return None  # nothing after a blocked slot may start (and nothing before it is in flight)
        items.append(node)
    return items


def _dependencies_done(flow: Flow, slot: Slot, parent_id: str | None, snap: Snapshot) -> bool:
    """Whether every `dependsOn` task of a Dag task has ended well; a disabled dependency never runs and does
    not hold it back (Kestra's dag-disabled-dependency)."""
    for dependency in slot.task.depends_on:
        try:
            if flow.task(dependency).disabled:
                continue
        except KeyError:
            continue  # the parser refuses unknown dependencies; a revision change must not wedge the Dag
        run = snap.get(dependency, parent_id, slot.iteration)
        if run is None or run.state not in _OK:
            return False
    return True


def _unit(task_id: str, iteration: int | None) -> int | str:
    """What a failure stops the rest of, in an isolated lane: a loop iteration, else the task itself."""
    return iteration if iteration is not None else task_id


def _unit_failed(slot: Slot, failed_units: set[int | str]) -> bool:
    """Whether a slot's unit failed, or (a Dag task) one of its dependencies did: it must not run."""
    return _unit(slot.task.id, slot.iteration) in failed_units or any(d in failed_units for d in slot.task.depends_on)


def _failed_units(main: Sequence[Slot], children: Iterable[TaskRunView]) -> set[int | str]:
    """The units of an isolated main phase that failed, with the Dag tasks whose dependencies did (in order)."""
    failed = {_unit(c.task_id, c.iteration) for c in children if c.state.is_failure}
    for slot in main:
        if _unit_failed(slot, failed):
            failed.add(_unit(slot.task.id, slot.iteration))
    return failed


def _entry(slot: Slot, parent_id: str | None, snap: Snapshot, *, attempt: int) -> Run:
    return run_of(snap.execution_id, slot.task, parent_id, slot.iteration, attempt)


def run_of(execution_id: str, task: TaskSpec, parent_id: str | None, iteration: int | None, attempt: int) -> Run:
    """The `Run` node of one attempt of a task run: its pool, and whether it enters (a flowable) or goes inline."""
    spec = CATALOGUE[task.type]
    inline = spec.inline and task.worker_group is None
    return Run(execution_id, task.id, parent_id, iteration, attempt, pool_of(task), spec.flowable, inline)


def _in_flight(flow: Flow, slot: Slot, run: TaskRunView, snap: Snapshot) -> PlanNode | None:
    if run.state is State.RETRYING:
        if run.retry_at is not None and run.retry_at > snap.now:
            return None
        return _entry(slot, run.parent_id, snap, attempt=run.attempt + 1)
    if run.state is State.PAUSED or run.decision.get("subflow") or run.decision.get("subflows"):
        return None  # waiting for a person, a timer or a child execution
    if run.state is State.RESTARTED:
        return _entry(slot, run.parent_id, snap, attempt=run.attempt + 1)
    if run.state is State.RUNNING and run.retry_at is not None and run.retry_at > snap.now:
        return None  # a long Sleep, parked until its end (or a loop waiting for its next iteration)
    if _is_flowable(slot.task) and run.decision.get("inline"):
        return _entry(slot, run.parent_id, snap, attempt=run.attempt)  # runs its children itself
    if _is_flowable(slot.task) and run.decision:
        if run.retry_at is not None and run.retry_at > snap.now:
            return None  # a loop waiting for its next iteration's time
        # Entered and decided: continue inside it rather than deciding again.
        return _parent_plan(flow, slot.task, run, snap)
    # CREATED/RUNNING: send again; the claim lets through only one live runner.
    return _entry(slot, run.parent_id, snap, attempt=run.attempt)


# ---- joins --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Wait:
    """Some child is still going; someone else joins later."""


@dataclass(frozen=True)
class StartPhase:
    """Run these lanes (a phase, or the rest of the current one), then join again."""

    lanes: tuple[Lane, ...]


@dataclass(frozen=True)
class Complete:
    """Every phase ended: the parent takes this state."""

    state: State


JoinDecision = Wait | StartPhase | Complete


def decide_join(lists: ChildLists, parent_id: str | None, snap: Snapshot) -> JoinDecision:
    """What a join does, from the children's states alone."""
    children = snap.children(parent_id)
    if any(not c.state.is_terminal for c in children):
        return Wait()
    lists = started_only(lists, parent_id, snap)
    by_slot = {(c.task_id, c.iteration): c.state for c in children}

    def states(slots: Sequence[Slot]) -> list[State]:
        return [by_slot[(s.task.id, s.iteration)] for s in slots if (s.task.id, s.iteration) in by_slot]

    def missing(slots: Sequence[Slot]) -> bool:
        return any((s.task.id, s.iteration) not in by_slot for s in slots)

    main = lists.main_slots
    if lists.isolated or lists.continues:
        # Units that failed are over; the others still to start make the main phase go on. Under CONTINUE their
        # failures still count; a Loop's own stay its iterations'.
        failed = _failed_units(main, children)
        if any((s.task.id, s.iteration) not in by_slot and _unit(s.task.id, s.iteration) not in failed for s in main):
            return StartPhase(lists.main)
        if lists.isolated:
            main = tuple(s for s in main if s.iteration not in failed)
    errors = tuple(Slot(t) for t in lists.errors)
    finally_ = tuple(Slot(t) for t in lists.finally_)
    in_errors = bool(states(errors))
    in_finally = bool(states(finally_))
    main_failed = lists.failed or any(s.is_failure for s in states(main))
    if not in_errors and not in_finally:
        if not main_failed and missing(main):
            return StartPhase(lists.main)  # a broken chain (lost message): finish the main phase
        if main_failed and errors:
            return StartPhase(_sequence(lists.errors))
    elif in_errors and not in_finally and missing(errors) and not any(s.is_failure for s in states(errors)):
        return StartPhase(_sequence(lists.errors))
    after = tuple(Slot(t) for t in lists.after)
    in_after = bool(states(after))
    if main_failed and not in_finally and not in_after:
        undo = _compensation_join(lists.compensation, snap)
        if undo is not None:
            return undo
    if (
        not in_after
        and finally_
        and (not in_finally or (missing(finally_) and not any(s.is_failure for s in states(finally_))))
    ):
        return StartPhase(_sequence(lists.finally_))
    if after and (not in_after or (missing(after) and not any(s.is_failure for s in states(after)))):
        return StartPhase(_sequence(lists.after))
    return Complete(decided_state(lists, children))


def _compensation_join(lane: Lane, snap: Snapshot) -> JoinDecision | None:
    """Wait for a compensation in flight, or start (or go on with) the compensation; None once it is over
    (every step done, or one failed: the steps after it wait for a restart)."""
    runs = [snap.get(s.task.id, s.undoes) for s in lane]
    if any(r is not None and not r.state.is_terminal for r in runs):
        return Wait()
    if any(r is None for r in runs) and not any(r is not None and r.state.is_failure for r in runs):
        return StartPhase((lane,))
    return None


def compensation_state(lists: ChildLists, snap: Snapshot) -> State | None:
    """How the compensation went (worst of its task runs), None when none ran."""
    runs = [snap.get(s.task.id, s.undoes) for s in lists.compensation]
    ran = [r.state for r in runs if r is not None]
    return worst_of(ran) if ran else None


def decided_state(lists: ChildLists, children: Iterable[TaskRunView]) -> State:
    """The parent's state from its children, leaving out `afterExecution`, which never changes it."""
    after = {t.id for t in lists.after}
    own = [State.FAILED] if lists.failed else []
    return worst_of([*own, *(c.state for c in children if c.task_id not in after)])
