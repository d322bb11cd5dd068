"""Claiming task runs: a worker takes one attempt (or re-takes a stalled one), runs inline chains, reads state."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from orchestrator import store
from orchestrator.core import compensation
from orchestrator.core.errors import ChorusError, ExpressionError
from orchestrator.core.flow import Flow
from orchestrator.core.plan import (
    PlanNode,
)
from orchestrator.core.plan import (
    pool_of as pool_of_task,
)
from orchestrator.core.states import State
from orchestrator.engine import (
    approval_tasks,
    child_failure,
    compensating,
    flows,
    joins,
    local_drive,
    loop_scope,
    operations,
    outcomes,
    sibling_policy,
)
from orchestrator.engine.sibling_runs import VariableRuns
from orchestrator.engine.values import (
    ClaimedTaskRun,
    TaskOutcome,
    TaskRunCoordinates,
    Verdict,
    still_ours,
)
from orchestrator.engine.variables import execution_variables
from orchestrator.store.database import Session, read_only
from orchestrator.store.tables import ExecutionRow, TaskRunRow

if TYPE_CHECKING:
    from orchestrator.engine.facade import Engine

logger = logging.getLogger(__name__)

_ENDED_OK = (State.SUCCESS, State.WARNING, State.SKIPPED)


def pool_of(engine: Engine, at: TaskRunCoordinates) -> str | None:
    """The pool that runs the task a message names (None: no such execution or task, the claim will say so).

    A worker compares it with the queue the message came from before claiming: a message re-applied to
    another pool's queue must not run where that pool's tools, limits or sandbox are missing.
    """
    with read_only(engine.sessions) as session:
        execution = store.get_execution(session, at.execution_id)
        if execution is None:
            return None
        try:
            return pool_of_task(flows.flow_of_execution(engine, session, execution).task(at.task_id))
        except (ChorusError, KeyError):
            return None


def task_run_states(engine: Engine, task_run_ids: Sequence[str]) -> dict[str, str]:
    """The current state of each of these task runs that exists (for a worker's report to Celery)."""
    with read_only(engine.sessions) as session:
        rows = (store.get_task_run(session, task_run_id) for task_run_id in task_run_ids)
        return {row.id: row.state for row in rows if row is not None}


def failed_tasks(engine: Engine, execution_id: str) -> list[str] | None:
    """The ids of the FAILED task runs' tasks when the execution ended FAILED; None when it did not."""
    with read_only(engine.sessions) as session:
        execution = store.get_execution(session, execution_id)
        if execution is None or execution.state != State.FAILED:
            return None
        runs = store.task_runs_of(session, execution_id)
        return list(dict.fromkeys(r.task_id for r in runs if r.state == State.FAILED))


def claim(
    engine: Engine,
    at: TaskRunCoordinates,
    *,
    owner: str,
    celery_task_id: str | None,
    requested_by: str | None = None,
    check_pool: Callable[[str], None] | None = None,
) -> ClaimedTaskRun | None:
    """Take one attempt of a task run, or None when another worker has it or it must not run.

    `check_pool`: called with the pool of the task the message names before anything is written; it raises to
    refuse the message (a worker's check of the queue it came from), which rolls the transaction back.
    """
    with engine.transaction() as session:
        # Claims and heartbeats are judged by the database's clock: skewed worker clocks would take over
        # a live claim (or keep a dead one) by the size of the skew. One statement locks, touches, reads it.
        locked = store.lock_touch_execution(session, at.execution_id)
        if locked is None:
            return None
        execution, now = locked
        if check_pool is not None:
            try:
                pool = pool_of_task(flows.flow_of_execution(engine, session, execution).task(at.task_id))
            except (ChorusError, KeyError):
                pool = None  # no such task: the claim says so
            if pool is not None:
                check_pool(pool)
        locked_row: TaskRunRow | bool | None = False
        if at.parent_id is None and State(execution.state) is State.RUNNING:
            # A top-level task run: its variables see the execution's root task runs and those with outputs, most
            # of them; one read of all (linear in the execution's size, never a fan-out sibling's read) also says
            # whether this one exists yet.
            store.hold_task_runs(session, at.execution_id)
            locked_row = locked_task_run(session, at)
        claimed = claim_in(
            engine, session, execution, at, owner, celery_task_id, requested_by, now, locked_row=locked_row
        )
    return claimed


def _loop_broken(
    session: Session, execution: ExecutionRow, flow: Flow, parent: TaskRunRow, at: TaskRunCoordinates
) -> bool:
    """Whether `at` would start an iteration of a Loop whose `breakWhen` held after an ended iteration.

    Checked as an iteration's first task run is about to be created, which is when Kestra's executor would
    start its sub-execution; iterations already started go on. Once it holds, the Loop's decision says so.
    """
    spec = flow.task(parent.task_id)
    if spec.type != loop_scope.LOOP or spec.properties.get("breakWhen") is None:
        return False
    decision = parent.decision or {}
    runs = store.task_runs_of(session, execution.id)
    if any(r.parent_id == parent.id and r.iteration == at.iteration for r in runs):
        return False  # started before the Loop broke: it goes on
    if decision.get("broken"):
        return True
    try:
        broken = loop_scope.break_due(
            spec, parent, runs, lambda run: execution_variables(execution, flow, spec, run, runs)
        )
    except ExpressionError as e:
        # A condition that cannot be rendered stops the Loop rather than running every remaining iteration.
        logger.warning("breakWhen of %s in %s: %s", parent.task_id, execution.id, e.message)
        broken = True
    if broken:
        store.set_decision(session, parent.id, {**decision, "broken": True})
        store.append_audit(
            session,
            execution.id,
            actor="system:loop",
            action="task_run.loop_broken",
            subject=parent.id,
            payload={"task_id": parent.task_id, "next_iteration": at.iteration},
        )
    return broken


def claim_in(
    engine: Engine,
    session: Session,
    execution: ExecutionRow,
    at: TaskRunCoordinates,
    owner: str,
    celery_task_id: str | None,
    requested_by: str | None,
    now: datetime,
    *,
    locked_row: TaskRunRow | bool | None = False,
    known_runs: VariableRuns | None = None,
) -> ClaimedTaskRun | None:
    """Claim in the caller's transaction, which holds the execution's lock.

    `locked_row`: the task run as the caller just read it with its lock (None: absent); False to read it here.
    `known_runs`: the task runs for variables, as this transaction already read them (None: read them here).
    """
    reapplied = False
    if State(execution.state) in (State.FAILED, State.KILLED):
        reapplied = _reapply(engine, session, execution, at, celery_task_id, requested_by)
        if reapplied:
            at = TaskRunCoordinates(at.execution_id, at.task_id, at.parent_id, at.iteration, at.attempt + 1)
    flow = flows.flow_of_execution(engine, session, execution)
    # A compensation runs under the task run it undoes, which has ended (SUCCESS): that is its point.
    undoing = compensation.is_compensation(flow, at.task_id)
    if State(execution.state) is not State.RUNNING and not (
        # A paused execution still lets sibling Approvals reach their own pause (Kestra's PAUSING).
        (State(execution.state) is State.PAUSED and approval_tasks.runs_while_paused(session, flow, at))
        # An execution killed with compensation runs its compensation (and nothing else) while KILLING.
        or (State(execution.state) is State.KILLING and undoing)
    ):
        return None
    task = flow.task(at.task_id)
    if locked_row is False or reapplied:  # a re-apply moves to the next attempt's coordinates
        row = store.get_task_run(session, at.task_run_id, lock=True)
    else:
        row = locked_row if isinstance(locked_row, TaskRunRow) else None
    parent: TaskRunRow | None = None
    if at.parent_id is not None and not undoing and (row is None or not State(row.state).is_terminal):
        parent = store.loaded_task_run(session, at.parent_id)
        if parent is not None and State(parent.state).is_terminal:
            return None  # its parent ended (interrupted by a sibling's failure): nothing starts under it
    if (
        row is None
        and parent is not None
        and at.iteration is not None
        and _loop_broken(session, execution, flow, parent, at)
    ):
        return None  # a Loop's `breakWhen` held: this iteration never starts; the chain goes on to the join
    attempt_record = {
        "state": {"current": str(State.RUNNING), "histories": [{"state": "RUNNING", "date": store.iso(now)}]},
        "celeryTaskId": celery_task_id,
        "worker": owner,
    }
    if row is None:
        if not undoing and sibling_policy.held_back(session, flow, at):
            return None  # a sibling failed under childFailurePolicy STOP or FAIL_FAST: no new child starts
        value = _iteration_value(session, at)
        row = TaskRunRow(
            id=at.task_run_id,
            execution_id=at.execution_id,
            task_id=at.task_id,
            parent_id=at.parent_id,
            iteration=at.iteration,
            value=value,
            state=str(State.RUNNING),
            # Kestra's task runs are born CREATED (TaskRun.of) and move to RUNNING when a worker takes them;
            # Chorus creates a task run as its worker claims it, so both entries carry the same date.
            state_history=[
                {"state": str(State.CREATED), "date": store.iso(now)},
                {"state": str(State.RUNNING), "date": store.iso(now)},
            ],
            attempt=at.attempt,
            attempts=[attempt_record],
            outputs=None,
            decision=None,
            retry_at=None,
            claim_owner=owner,
            heartbeat_at=now,
            created_at=now,
            updated_at=now,
        )
        if not store.create_task_run(session, row, actor=f"worker:{owner}"):
            return None
        if parent is not None and child_failure.interrupt_late_sibling(engine, session, execution, flow, parent, row):
            return None  # a sibling had already failed: Kestra's sibling task run exists, interrupted
    elif not _reclaim(engine, session, row, at, owner, attempt_record, now):
        return None
    store.touch_execution(session, at.execution_id, now)
    runs = store.task_runs_for_variables(session, at.execution_id) if known_runs is None else known_runs.current(row)
    variables = execution_variables(execution, flow, task, row, runs)
    if undoing:
        variables["compensation"] = compensating.variables(session, flow, row)
    variables["envs"], variables["globals"] = dict(engine.settings.envs), dict(engine.settings.globals_)
    return ClaimedTaskRun(at, owner, flow, task, variables, reapplied=reapplied, clock=store.DbClock.of(session))


def run_inline(
    engine: Engine,
    execution_id: str,
    runs: Sequence[TaskRunCoordinates],
    *,
    join: bool,
    skip_runs: bool,
    owner: str,
    celery_task_id: str | None,
    requested_by: str | None,
    run: Callable[[ClaimedTaskRun], TaskOutcome],
    independent: bool = False,
) -> tuple[Verdict, PlanNode | None, bool]:
    """Claim, run and record consecutive inline task runs, then their parent's join, in one transaction.

    `run` is pure (TaskType.inline): nothing happens outside this transaction, so a crash anywhere
    leaves nothing behind and a redelivery starts over. Task runs already ended (a redelivery after
    commit, or a re-apply of the whole message) are passed over; the first that cannot be claimed or
    does not succeed stops the rest, as a chain link's `stop` verdict would. `independent` (siblings
    of a fan-out, one chunk of its branches): such a task run stops none of the others, as its own
    message would not have. `skip_runs` (the chain's previous link stopped) leaves only the join.
    Returns the verdict (independent: STOP when one that ran here did not succeed), the plan the join
    starts (a next phase), and whether a failed task run was re-applied (its chain continuation is gone).
    """
    reapplied = False
    verdict = Verdict.STOP if skip_runs else Verdict.OK
    with engine.transaction() as session:
        locked = store.lock_touch_execution(session, execution_id)  # the lock, a touch and the database's clock
        if locked is None:
            return Verdict.STOP, None, False
        execution, now = locked
        if join and runs and not skip_runs and State(execution.state) is State.RUNNING:
            # The join at the end reads every task run anyway: read them once now, and the claims' reads
            # (variables, the rows they create, a task run that does not exist yet) need no query.
            store.hold_task_runs(session, execution_id)
        known: VariableRuns | None = None
        for at in () if skip_runs else runs:
            existing = locked_task_run(session, at)
            if existing is not None and existing.attempt == at.attempt and State(existing.state) in _ENDED_OK:
                continue  # done by an earlier delivery of this message
            # A re-apply (of a failed execution) restarts task runs before claiming: the claim reads afresh.
            running = State(execution.state) is State.RUNNING
            known = (known or VariableRuns(session, execution_id)) if running else None
            claimed = claim_in(
                engine,
                session,
                execution,
                at,
                owner,
                celery_task_id,
                requested_by,
                now,
                locked_row=existing,
                known_runs=known,
            )
            if claimed is None:
                if independent:
                    continue  # a sibling's claim elsewhere (or its end) is no verdict on the others
                verdict = Verdict.STOP
                break
            reapplied = reapplied or claimed.reapplied
            row = store.loaded_task_run(session, claimed.coordinates.task_run_id)
            assert row is not None  # claimed just now, in this transaction
            store.note_flow(session, flows.task_types(engine, claimed.flow))
            ended = outcomes.finish_locked(
                engine, session, execution, row, claimed.task, claimed.flow, run(claimed), actor=f"worker:{owner}"
            )
            if known is not None:
                known.current(row)  # its outputs are visible to the siblings claimed after it, as before
            verdict = ended if verdict == Verdict.OK else verdict
            if ended != Verdict.OK and not independent:
                break
        if not join:
            return verdict, None, reapplied
        parent_id = runs[0].parent_id if runs else None
        joined, plan = joins.join_in(engine, session, execution, parent_id, actor="system:join")
        if plan is not None:  # the phase the join starts: its pure control work runs here too
            joined, plan = local_drive.drive(engine, session, execution, plan, now=now)
    return joined, plan, reapplied


def locked_task_run(session: Session, at: TaskRunCoordinates) -> TaskRunRow | None:
    """The task run, locked; no query for one this transaction knows does not exist."""
    if store.known_absent(session, at.execution_id, at.task_run_id):
        return None  # task runs are created under the execution's lock, which this transaction holds
    return store.get_task_run(session, at.task_run_id, lock=True)


def _reapply(
    engine: Engine,
    session: Session,
    execution: ExecutionRow,
    at: TaskRunCoordinates,
    celery_task_id: str | None,
    requested_by: str | None,
) -> bool:
    """A failed attempt's own message, sent again by a person (`requested_by`), asks for another attempt.

    Redeliveries keep their Celery id and are ignored, and so is any message the planner sent
    (`requested_by` None: a duplicate dispatch that arrives after the attempt failed). A re-apply restarts
    this task run (and its failed parents) and the execution, in this transaction; the claim then takes
    the next attempt.
    """
    if requested_by is None:
        return False
    row = store.get_task_run(session, at.task_run_id, lock=True)
    if row is None or celery_task_id is None or row.attempt != at.attempt:
        return False
    if State(row.state) not in (State.FAILED, State.KILLED) or not row.attempts:
        return False
    if row.attempts[-1].get("celeryTaskId") == celery_task_id:
        return False
    flow = flows.flow_of_execution(engine, session, execution)
    runs = list(store.task_runs_of(session, execution.id))
    by_id = {r.id: r for r in runs}
    failed = [row]
    parent = by_id.get(row.parent_id or "")
    while parent is not None:
        if State(parent.state) in (State.FAILED, State.KILLED):
            failed.append(parent)
        parent = by_id.get(parent.parent_id or "")
    actor = requested_by
    undoing = compensation.is_compensation(flow, row.task_id)
    if undoing:  # as a Restart of a failed compensation: the rest of the compensation, then `finally`, follow
        compensating.discard_closing_phases(session, flow, runs, actor=actor)
    killed = State(execution.state) is State.KILLED
    operations.restart_task_runs(session, flow, runs, failed, actor=actor)
    store.record_transition(
        session, execution, State.RESTARTED, actor=actor, values={"restarts": execution.restarts + 1}
    )
    # Killed with compensation: back to KILLING, where only compensation runs (no `errors`), then KILLED.
    store.record_transition(session, execution, State.KILLING if undoing and killed else State.RUNNING, actor=actor)
    return True


def _iteration_value(session: Session, at: TaskRunCoordinates) -> str | None:
    """A loop child's `taskrun.value`: its iteration's value (other task runs have none, as in Kestra)."""
    if at.parent_id is None or at.iteration is None:
        return None
    parent = store.loaded_task_run(session, at.parent_id)
    values = (parent.decision or {}).get("values") if parent is not None else None
    if isinstance(values, list) and at.iteration < len(values):
        item = values[at.iteration]
        return item if isinstance(item, str) else json.dumps(item, separators=(",", ":"))
    return None


def _reclaim(
    engine: Engine,
    session: Session,
    row: TaskRunRow,
    at: TaskRunCoordinates,
    owner: str,
    attempt_record: dict[str, Any],
    now: datetime,
) -> bool:
    state = State(row.state)
    stale_before = now - timedelta(seconds=engine.settings.stale_after_s)
    if state is State.RUNNING and row.attempt == at.attempt:
        if row.heartbeat_at is not None and row.heartbeat_at > stale_before:
            return False  # a live worker has it: this delivery is a duplicate
        if row.decision and not (row.decision.get("inline") or row.decision.get("sleep_until")):
            # Decided (a flowable's branch, a resumed Pause, a waiting Subflow): the planner continues it
            # from the database; a late redelivery must not decide again (pause twice, start a second child).
            # A Sleep's recorded end is no decision: its next claim only reads it back.
            return False
        if row.claim_owner is not None and store.db_started_at(session) > stale_before:
            # The database restarted less than a staleness window ago: a live claimant may not have been
            # able to heartbeat yet, and its attempt may have finished (it is retrying to record it).
            return False
        # The claimant stopped heartbeating (worker death), parked a long Sleep, or handed the attempt back
        # (its worker was stopping): take the attempt over.
        if row.claim_owner is not None:
            action = "task_run.taken_over"
        else:
            action = "task_run.woken" if (row.decision or {}).get("sleep_until") else "task_run.taken_back"
        store.append_audit(
            session,
            row.execution_id,
            actor=f"worker:{owner}",
            action=action,
            subject=row.id,
            payload={"task_id": row.task_id, "attempt": row.attempt, "previous_owner": row.claim_owner},
            at=now,
        )
        if row.claim_owner is not None:  # a recovery, for the hooks (a parked Sleep's wake-up is none)
            store.note_take_over(session, row, actor=f"worker:{owner}", at=now)
        row.claim_owner, row.heartbeat_at = owner, now
        return True
    if state in (State.RETRYING, State.RESTARTED) and at.attempt == row.attempt + 1:
        if state is State.RETRYING and row.retry_at is not None and row.retry_at > now:
            return False
        store.record_transition(
            session,
            row,
            State.RUNNING,
            actor=f"worker:{owner}",
            values={
                "attempt": at.attempt,
                "attempts": [*row.attempts, attempt_record],
                "retry_at": None,
                "claim_owner": owner,
                "heartbeat_at": now,
            },
            at=now,
        )
        return True
    return False


def execution_location(engine: Engine, execution_id: str) -> tuple[str, str] | None:
    """The (namespace, flow id) of an execution, for the namespace checks of tasks that name one by id."""
    with read_only(engine.sessions) as session:
        row = store.get_execution(session, execution_id)
        return (row.namespace, row.flow_id) if row is not None and row.tenant == engine.settings.tenant else None


def child_location(engine: Engine, execution_id: str, parent_id: str) -> tuple[str, str] | None:
    """The (namespace, flow id) of `execution_id` when `parent_id` started it (a Subflow's child, or its retry);
    None for any other execution."""
    with read_only(engine.sessions) as session:
        row = store.get_execution(session, execution_id)
        if row is None or row.tenant != engine.settings.tenant or row.parent_execution_id != parent_id:
            return None
        return (row.namespace, row.flow_id) if row.parent_task_run_id is not None else None


def error_logs(engine: Engine, execution_id: str) -> list[dict[str, Any]]:
    """Kestra's `errorLogs()`: the execution's ERROR log lines so far."""
    with read_only(engine.sessions) as session:
        return [
            {
                "taskId": r.task_id,
                "taskRunId": r.task_run_id,
                "message": r.message,
                "level": r.level,
                "timestamp": store.iso(r.at),
            }
            for r in store.error_log_lines(session, execution_id)
        ]


def task_run_state(engine: Engine, task_run_id: str) -> str | None:
    with read_only(engine.sessions) as session:
        row = store.get_task_run(session, task_run_id)
        return row.state if row is not None else None


def task_run_attempt(engine: Engine, task_run_id: str) -> int:
    """The attempt number the next claim of this task run must carry (current + 1 once it ended)."""
    with read_only(engine.sessions) as session:
        row = store.get_task_run(session, task_run_id)
        if row is None:
            return 1
        return row.attempt + 1 if State(row.state) in (State.RETRYING, State.RESTARTED) else row.attempt


def current_variables(engine: Engine, claimed: ClaimedTaskRun) -> dict[str, Any]:
    """The variables of a claimed task run as they are now: those of its claim, with the outputs of the task runs
    that ended since (a WorkingDirectory renders a child's runIf in its own context, which sees the outputs of the
    children run before it: Kestra's WorkingDirectoryTaskProcessor chains its RunContext through them)."""
    at = claimed.coordinates
    with read_only(engine.sessions) as session:
        execution = store.get_execution(session, at.execution_id)
        row = store.get_task_run(session, at.task_run_id)
        if execution is None or row is None:
            return dict(claimed.variables)
        variables = execution_variables(
            execution, claimed.flow, claimed.task, row, store.task_runs_for_variables(session, at.execution_id)
        )
    variables["envs"], variables["globals"] = dict(engine.settings.envs), dict(engine.settings.globals_)
    return variables


def set_running_outputs(engine: Engine, claimed: ClaimedTaskRun, outputs: dict[str, Any]) -> None:
    """Outputs of a flowable this worker owns, set before its join (WorkingDirectory's outputFiles)."""
    with engine.transaction() as session:
        store.lock_execution(session, claimed.coordinates.execution_id)
        row = store.get_task_run(session, claimed.coordinates.task_run_id, lock=True)
        if row is not None and still_ours(row, claimed):
            row.outputs = {**(row.outputs or {}), **outputs}


def hand_back(engine: Engine, claimed: ClaimedTaskRun) -> None:
    """Release a claim whose attempt this worker stopped unfinished (its drain time was up).

    The task run stays RUNNING on the same attempt with no owner and no heartbeat, as a parked Sleep does: the
    re-queued message (or the sweeper's next dispatch) takes the same attempt over at once.
    """
    at = claimed.coordinates
    with engine.transaction() as session:
        store.lock_execution(session, at.execution_id)
        row = store.get_task_run(session, at.task_run_id, lock=True)
        if row is None or not still_ours(row, claimed):
            return  # taken over already (a stall) or ended: nothing of ours to release
        row.claim_owner, row.heartbeat_at = None, None
        store.append_audit(
            session,
            at.execution_id,
            actor=f"worker:{claimed.owner}",
            action="task_run.handed_back",
            subject=row.id,
            payload={"task_id": row.task_id, "attempt": row.attempt},
        )


def heartbeat(engine: Engine, at: TaskRunCoordinates, owner: str) -> bool:
    """Refresh `owner`'s claim; False when it is no longer theirs (the attempt must stop: workers/runtime.py)."""
    with engine.transaction() as session:
        return store.heartbeat(session, at.task_run_id, owner)


def fetch_logs(
    engine: Engine, execution_id: str, *, task_ids: Sequence[str] = (), min_level: str = "INFO"
) -> list[dict[str, Any]]:
    """Log lines of an execution (the Fetch task): by task ids, at or above a level."""
    order = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"]
    floor = order.index(min_level) if min_level in order else 2
    with read_only(engine.sessions) as session:
        rows = store.log_lines_of(session, execution_id)
    return [
        {"taskId": r.task_id, "level": r.level, "message": r.message, "timestamp": store.iso(r.at)}
        for r in rows
        if (not task_ids or r.task_id in task_ids) and (order.index(r.level) if r.level in order else 2) >= floor
    ]


def child_execution_outputs(engine: Engine, parent_task_run_id: str) -> list[dict[str, Any]]:
    with engine.transaction() as session:
        return store.child_execution_outputs(session, parent_task_run_id)
