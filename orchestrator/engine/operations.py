"""Execution control asked by people (and timers): kill, pause, resume, restart, wake paused task runs.

Each operation is one transaction on the locked execution row, with every state change audited by
`store.record_transition`; whatever must run next is then compiled from the database and sent by
`Engine.dispatch`, exactly as for a first run.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from orchestrator import store
from orchestrator.core import approval as approval_rules
from orchestrator.core import compensation, plan
from orchestrator.core.durations import parse_duration
from orchestrator.core.errors import Conflict, LabelsInvalid, NoTaskToRestart, NotFound
from orchestrator.core.flow import Flow, Input, InputType, TaskSpec
from orchestrator.core.ids import task_run_id
from orchestrator.core.inputs import coerce_declared
from orchestrator.core.states import TERMINAL, State
from orchestrator.engine import (
    admission,
    agent_journal,
    approval_tasks,
    compensating,
    flows,
    joins,
    ledger_replay,
    pending,
)
from orchestrator.engine.values import task_run_view
from orchestrator.store import agent as store_agent
from orchestrator.store import ledger_replay as store_ledger_replay
from orchestrator.store.database import Session, read_only
from orchestrator.store.tables import ExecutionRow, TaskRunRow

if TYPE_CHECKING:
    from orchestrator.engine.facade import Engine

logger = logging.getLogger(__name__)

_RESTARTABLE = frozenset({State.FAILED, State.KILLED})


def lock_existing(engine: Engine, session: Session, execution_id: str) -> ExecutionRow:
    """The execution row, locked for this transaction; NotFound when there is none."""
    execution = store.lock_execution(session, execution_id)
    if execution is None:
        raise NotFound("execution", execution_id)
    return execution


# ---- kill ---------------------------------------------------------------------------------------


def kill(engine: Engine, execution_id: str, *, actor: str, compensate: bool = False) -> ExecutionRow:
    """KILLING, then every unfinished task run KILLED, then KILLED; running Celery tasks are revoked.

    `compensate`: the task runs that had succeeded are undone first (their `compensate` tasks, latest first): the
    execution stays KILLING while they run, and ends KILLED after them. Without any to undo, a plain kill.
    """
    return _stop(engine, execution_id, State.KILLED, actor=actor, compensate=compensate)


def stop(
    engine: Engine, execution_id: str, final: State, *, actor: str, payload: dict[str, Any] | None = None
) -> ExecutionRow:
    """End a running execution in `final` (an SLA's FAIL or CANCEL), its unfinished task runs KILLED."""
    return _stop(engine, execution_id, final, actor=actor, payload=payload)


def _stop(
    engine: Engine,
    execution_id: str,
    final: State,
    *,
    actor: str,
    payload: dict[str, Any] | None = None,
    compensate: bool = False,
) -> ExecutionRow:
    """Stop an execution: unfinished task runs KILLED (their Celery tasks revoked), the execution `final`."""
    now = store.utcnow()
    celery_ids: list[str] = []
    with engine.transaction() as session:
        execution = lock_existing(engine, session, execution_id)
        if State(execution.state) in TERMINAL:
            raise Conflict(f"execution {execution_id} has already ended ({execution.state})")
        flows.flow_of_execution(engine, session, execution)  # marks the flow's concurrency, so a kill frees its slot
        if execution.parent_task_run_id is not None:
            # A stopped child (killed, ended by its SLA or an approval) completes its parent's Subflow task
            # like any child that ends: the parent is not left waiting (Kestra's SLA test on a subflow).
            pending.child_ended(session, execution.id)
        if State(execution.state) in (State.CREATED, State.QUEUED):
            store.record_transition(session, execution, final, actor=actor, payload=payload)  # never started
            return execution
        if State(execution.state) is not State.KILLING:
            asked = {**(payload or {}), "compensate": True} if compensate else payload
            store.record_transition(session, execution, State.KILLING, actor=actor, payload=asked)
        for run in store.task_runs_of(session, execution_id):
            if State(run.state) in TERMINAL:
                continue
            if State(run.state) is State.RUNNING and run.attempts:
                celery_ids.extend(filter(None, [run.attempts[-1].get("celeryTaskId")]))
            store.record_transition(
                session,
                run,
                State.KILLED,
                actor=actor,
                values={
                    "attempts": store.close_attempt(run.attempts, State.KILLED, now),
                    "claim_owner": None,
                    "retry_at": None,
                },
            )
        flow = flows.flow_of_execution(engine, session, execution)
        undoing = compensate and bool(
            compensation.steps(flow, [task_run_view(r) for r in store.task_runs_of(session, execution_id)])
        )
        if not undoing:
            store.record_transition(session, execution, final, actor=actor, payload=payload)
        # else it stays KILLING (a state no other operation leaves at rest) until its compensation has run: the
        # root's join then ends it KILLED.
        children = store.running_children(session, execution_id)
    for child_id in children:  # subflow executions die with their parent (Kestra's kill cascade)
        with contextlib.suppress(Conflict):  # it ended meanwhile
            kill(engine, child_id, actor=actor)
    if undoing:
        engine.dispatch(execution_id, actor=actor)
    if celery_ids:
        # Best effort: a revoked task that already finished is a no-op, and its finish() finds KILLED.
        try:
            engine.celery.control.revoke(celery_ids, terminate=True, signal="SIGTERM")
        except Exception:
            logger.warning("could not revoke %s", celery_ids, exc_info=True)
    return execution


# ---- retry into a new execution ---------------------------------------------------------------------


def retry_in_new_execution(
    engine: Engine, session: Session, execution: ExecutionRow, flow: Flow, due: datetime, *, actor: str
) -> ExecutionRow:
    """Kestra's retry `behavior: CREATE_NEW_EXECUTION`: this execution ends RETRIED, the next one starts at `due`.

    The caller holds the execution lock and has just failed a task run. Work still in flight here is
    killed; the new execution has the same revision, inputs, labels and trigger, and takes over a
    waiting parent (a Subflow task run waits for the retry, not for the execution it replaces).
    """
    now = store.transaction_now(session)
    for run in store.task_runs_of(session, execution.id):
        if State(run.state) not in TERMINAL:
            store.record_transition(
                session, run, State.KILLED, actor=actor,
                values={"attempts": store.close_attempt(run.attempts, State.KILLED, now), "claim_owner": None,
                        "retry_at": None},
            )  # fmt: skip
    store.record_transition(session, execution, State.RETRIED, actor=actor, payload={"next_attempt_at": store.iso(due)})
    flow_row = flows.live_revision(engine, session, execution.namespace, execution.flow_id, execution.flow_revision)
    parent = (
        (execution.parent_execution_id, execution.parent_task_run_id)
        if execution.parent_execution_id and execution.parent_task_run_id
        else None
    )
    retry = engine.create_execution(
        session, flow_row, flow, dict(execution.inputs), list(execution.labels), actor=actor,
        trigger=execution.trigger, parent=parent, scheduled_at=max(due, now + timedelta(milliseconds=1)),
        retry_of=execution,
    )  # fmt: skip
    if parent is not None:
        waiting = store.get_task_run(session, parent[1], lock=True)
        if waiting is not None and (waiting.decision or {}).get("subflow") == execution.id:
            waiting.decision = {**(waiting.decision or {}), "subflow": retry.id}
    return retry


# ---- SLAs ---------------------------------------------------------------------------------------

_SLA_OUTCOME = {"FAIL": State.FAILED, "CANCEL": State.CANCELLED}


def sla_deadline(flow: Flow, started: datetime) -> tuple[datetime | None, dict[str, Any] | None]:
    """The earliest MAX_DURATION deadline among the flow's `sla` entries (Kestra's execution SLAs)."""
    best: tuple[datetime | None, dict[str, Any] | None] = (None, None)
    for entry in flow.sla if isinstance(flow.sla, list) else []:
        if not isinstance(entry, dict) or entry.get("type") != "MAX_DURATION" or not entry.get("duration"):
            continue
        due = started + parse_duration(str(entry["duration"]))
        if best[0] is None or due < best[0]:
            sla = {"id": entry.get("id"), "behavior": entry.get("behavior", "FAIL"), "labels": entry.get("labels")}
            best = (due, sla)
    return best


def enforce_slas(engine: Engine, now: datetime) -> None:
    """Executions past their MAX_DURATION: FAIL or CANCEL them (running work is killed), or only label them."""
    with read_only(engine.sessions) as session:
        due = list(store.executions_past_sla(session, now))
    for execution_id in due:
        with read_only(engine.sessions) as session:
            row = store.get_execution(session, execution_id)
            sla = dict(row.sla or {}) if row is not None else {}
        payload = {"sla": sla.get("id"), "reason": "SLA MAX_DURATION exceeded"}
        labels = sla.get("labels")
        if isinstance(labels, dict) and labels:
            breach = [{"key": k, "value": str(v)} for k, v in labels.items()]
            try:
                engine.set_labels(execution_id, breach, actor="system:sla")
            except LabelsInvalid as e:
                # The breach is still enforced below: labels over the limit must not leave it pending forever.
                logger.warning("SLA labels of %s not set: %s", execution_id, e.message)
        final = _SLA_OUTCOME.get(str(sla.get("behavior", "FAIL")).upper())
        with contextlib.suppress(Conflict):
            if final is not None:
                _stop(engine, execution_id, final, actor="system:sla", payload=payload)
        with engine.transaction() as session:  # enforced once: the deadline is spent either way
            store.clear_sla(session, execution_id)


def end_execution_as(engine: Engine, execution_id: str, final: State, *, actor: str) -> None:
    """End an execution in `final` on a task's word (an Approval's SUCCEED, CANCEL or KILL behaviour):
    unfinished task runs are killed; an execution that ended meanwhile is left as it is."""
    with contextlib.suppress(Conflict):
        if final is State.KILLED:
            kill(engine, execution_id, actor=actor)
        else:
            _stop(engine, execution_id, final, actor=actor, payload={"reason": f"ended {final} by an approval"})


# ---- pause and resume ---------------------------------------------------------------------------


def pause(engine: Engine, execution_id: str, *, actor: str) -> ExecutionRow:
    """Pause a running execution: nothing new starts until it is resumed (running task runs finish)."""
    with engine.transaction() as session:
        execution = lock_existing(engine, session, execution_id)
        if State(execution.state) is not State.RUNNING:
            raise Conflict(f"execution {execution_id} is not running ({execution.state})")
        store.record_transition(session, execution, State.PAUSED, actor=actor)
    return execution


def resume(engine: Engine, execution_id: str, inputs: Mapping[str, Any], *, actor: str) -> ExecutionRow:
    """Resume a paused execution; a paused Pause task takes the `onResume` inputs as its outputs."""
    with engine.transaction() as session:
        execution = lock_existing(engine, session, execution_id)
        if State(execution.state) is not State.PAUSED:
            raise Conflict(f"execution {execution_id} is not paused ({execution.state})")
        flow = flows.flow_of_execution(engine, session, execution)
        # A Loop paused on an iteration's behalf is not resumed itself: it runs again with that iteration.
        paused = [
            r
            for r in store.waiting_task_runs(store.task_runs_of(session, execution_id))
            if State(r.state) is State.PAUSED
        ]
        # Kestra's ExecutionService.findPausedTaskRunToResume: a plain resume resumes a paused task run that is not
        # an Approval when there is one (an Approval is decided by a review); the execution stays PAUSED while an
        # Approval still waits. With only Approvals paused, Chorus decides them (the `decision` field, APPROVED
        # when absent) where Kestra 2 answers 409: a client that only knows resume still gets through.
        others = [r for r in paused if flow.task(r.task_id).type != approval_rules.APPROVAL]
        for run in others or paused:
            agent_journal.apply_approval(session, run, inputs, actor=actor)  # an agent's gated tool call
            _resume_task_run(session, flow, run, inputs, actor=actor)
        if not (others and len(others) < len(paused)):
            store.record_transition(session, execution, State.RUNNING, actor=actor)
        else:
            for run in others:
                # The execution stays PAUSED on its Approval: the resumed Pause ends now (Kestra's markAs), a
                # Pause with `tasks` runs them once the Approval is reviewed and the execution dispatched.
                joins.join_in(engine, session, execution, run.id, actor=actor)
    engine.dispatch(execution_id, actor=actor)
    return execution


def unqueue(engine: Engine, execution_id: str, *, actor: str) -> ExecutionRow:
    """Start a QUEUED execution now, past its flow's concurrency limit (Kestra's ConcurrencyLimitService.unqueue)."""
    with engine.transaction() as session:
        execution = lock_existing(engine, session, execution_id)
        if State(execution.state) is not State.QUEUED:
            raise Conflict(f"only a QUEUED execution can be unqueued; {execution_id} is {execution.state}")
        flows.flow_of_execution(engine, session, execution)
        store.record_transition(session, execution, State.RUNNING, actor=actor)
    engine.dispatch(execution_id, actor=actor)
    return execution


def force_run(engine: Engine, execution_id: str, *, actor: str) -> ExecutionRow:
    """Kestra's ExecutionService.forceRun: a CREATED execution (one scheduled for later) starts now, a QUEUED one
    is unqueued, a PAUSED one resumed; any other live state is left as it is. An ended one is refused."""
    with engine.transaction() as session:
        execution = lock_existing(engine, session, execution_id)
        state = State(execution.state)
        if state.is_terminal:
            raise Conflict(f"only a live execution can be forced to run; {execution_id} has ended ({execution.state})")
        if state is State.CREATED:
            flows.flow_of_execution(engine, session, execution)
            store.record_transition(session, execution, State.RUNNING, actor=actor, values={"scheduled_at": None})
    if state is State.CREATED:
        engine.dispatch(execution_id, actor=actor)
    elif state is State.QUEUED:
        return unqueue(engine, execution_id, actor=actor)
    elif state is State.PAUSED:
        return resume(engine, execution_id, {}, actor=actor)
    return execution


def _resume_task_run(session: Session, flow: Flow, run: TaskRunRow, inputs: Mapping[str, Any], *, actor: str) -> None:
    spec = flow.task(run.task_id)
    if spec.type == "Approval" and approval_tasks.is_waiting(spec, run):
        # A plain resume decides a paused Approval: its `decision` field, APPROVED when absent.
        decided = approval_tasks.resume_values(spec, run, inputs, actor=actor)
        store.record_transition(session, run, State.RUNNING, actor=actor, values=decided)
        return
    declared = spec.properties.get("onResume")
    values: dict[str, Any] = {"retry_at": None, "decision": approval_tasks.unwaited(run.decision)}
    outputs = {**(run.outputs or {}), "resumed": approval_tasks.resumed_output(actor, State.SUCCESS)}
    payload: dict[str, Any] | None = None
    if isinstance(declared, list) and declared:
        specs = [Input.model_validate(d) for d in declared]
        taken = coerce_declared(specs, inputs)
        outputs["onResume"] = taken
        payload = {"onResume": masked_resume_values(specs, taken)}  # who resumed with what (a change ticket)
    values["outputs"] = outputs
    store.record_transition(session, run, State.RUNNING, actor=actor, payload=payload, values=values)


def masked_resume_values(specs: Sequence[Input], values: Mapping[str, Any]) -> dict[str, Any]:
    """`onResume` values as the audit trail may keep them: SECRET inputs masked."""
    secret = {s.id for s in specs if s.type is InputType.SECRET}
    return {k: ("******" if k in secret and v is not None else v) for k, v in values.items()}


_WAKE_REASONS = {"timeout": "pause timeout", "expire": "approval expired"}


def wake_due(engine: Engine, now: datetime) -> list[str]:
    """Paused task runs whose delay or timeout has come: resume them, or fail them on timeout."""
    woken: list[str] = []
    endings: list[tuple[str, State]] = []
    with engine.transaction() as session:
        due = store.due_paused_task_runs(session, now)
        for execution_id, task_run_id in due:
            execution = lock_existing(engine, session, execution_id)
            run = store.get_task_run(session, task_run_id, lock=True)
            if run is None or State(run.state) is not State.PAUSED:
                continue
            on_due = (run.decision or {}).get("on_due")
            state, values, ending = approval_tasks.wake(run)
            store.record_transition(
                session,
                run,
                state,
                actor="system:timer",
                payload={"reason": _WAKE_REASONS.get(str(on_due), "pause delay elapsed")},
                values=values,
            )
            if State(execution.state) is State.PAUSED and not _still_paused(session, execution_id):
                store.record_transition(session, execution, State.RUNNING, actor="system:timer")
            if ending is not None:
                endings.append((execution_id, ending))
            else:
                woken.append(execution_id)
    for execution_id, ending in endings:
        end_execution_as(engine, execution_id, ending, actor="system:timer")
    for execution_id in dict.fromkeys(woken):
        engine.dispatch(execution_id, actor="system:timer")
    return woken


def _still_paused(session: Session, execution_id: str) -> bool:
    return any(State(r.state) is State.PAUSED for r in store.task_runs_of(session, execution_id))


# ---- restart ------------------------------------------------------------------------------------


def restart(engine: Engine, execution_id: str, *, actor: str) -> ExecutionRow:
    """Send a failed execution back: failed task runs get a new attempt, the rest of the flow continues.

    As in Kestra: the execution goes RESTARTED (then RUNNING when dispatched), failed leaves go
    RESTARTED and run as their next attempt, failed flowables go back to RUNNING, and task runs of
    `errors`/`finally`/`afterExecution` phases that already ran are discarded so they run again if still needed.
    """
    with engine.transaction() as session:
        execution = lock_existing(engine, session, execution_id)
        running = restart_locked(engine, session, execution, actor=actor)
    if running:
        engine.dispatch(execution_id, actor=actor)
    return execution


def restart_locked(engine: Engine, session: Session, execution: ExecutionRow, *, actor: str) -> bool:
    """`restart` inside the caller's transaction, on the execution it has locked; whether to dispatch it once
    committed (a Subflow or ForEachItem restarting its failed child executions does it with its own, in
    engine/subflows.py)."""
    execution_id = execution.id
    if not State(execution.state).is_terminal:
        raise Conflict(f"execution {execution_id} cannot be restarted from {execution.state}")
    runs = list(store.task_runs_of(session, execution_id))
    failed = [r for r in runs if State(r.state) in _RESTARTABLE]
    if not failed:  # an ended execution with nothing failed: Kestra's 422, not a state conflict
        raise NoTaskToRestart(execution_id)
    if State(execution.state) not in _RESTARTABLE:
        raise Conflict(f"execution {execution_id} cannot be restarted from {execution.state}")
    flow = flows.flow_of_execution(engine, session, execution)
    undoing = compensating.restart_scope(session, flow, execution, runs, failed, actor=actor)
    killed = State(execution.state) is State.KILLED
    restart_task_runs(session, flow, runs, undoing or failed, actor=actor)
    store.record_transition(
        session, execution, State.RESTARTED, actor=actor, values={"restarts": execution.restarts + 1}
    )
    if undoing and killed:
        # Killed with compensation: it goes on KILLING (its compensation alone, no `errors`), then ends KILLED.
        store.record_transition(session, execution, State.KILLING, actor=actor, payload={"compensate": True})
        running = True
    else:
        running = _admit_restarted(engine, session, flow, execution)
    return running


def _admit_restarted(engine: Engine, session: Session, flow: Flow, execution: ExecutionRow) -> bool:
    """Whether a RESTARTED execution may run now under its flow's `concurrency`; else it waits QUEUED.

    As in Kestra (kestra-io/kestra#10674), a restart counts against the limit like a new execution. A flow
    whose limit CANCELs or FAILs executions over it refuses the restart instead: the execution stays as it
    ended rather than ending again with its failed task runs sent back.
    """
    admitted = admission.admit(engine, session, flow, holding=1)
    if admitted is State.RUNNING:
        return True
    if admitted is not State.QUEUED:
        raise Conflict(
            f"execution {execution.id} cannot be restarted now: flow {flow.namespace}.{flow.id} has reached its "
            f"concurrency limit ({flow.concurrency.limit if flow.concurrency else 0}) and its behavior is "
            f"{flow.concurrency.behavior if flow.concurrency else ''}"
        )
    store.record_transition(session, execution, State.QUEUED, actor="system:concurrency")
    return False


def restart_task_runs(
    session: Session, flow: Flow, runs: Sequence[TaskRunRow], failed: Sequence[TaskRunRow], *, actor: str
) -> None:
    by_id = {r.id: r for r in runs}
    discard = _phase_runs_to_discard(flow, runs, failed)
    for run in failed:
        if run.id in discard:
            continue
        spec = flow.task(run.task_id)
        store.record_transition(session, run, State.RESTARTED, actor=actor)
        if spec.branches and not _reruns_whole(spec):
            store.record_transition(session, run, State.RUNNING, actor=actor)
    for run_id in discard:
        store.discard_task_run(session, by_id[run_id], actor=actor)


def _reruns_whole(spec: TaskSpec) -> bool:
    """A WorkingDirectory restarts as a whole, like a leaf (Kestra's `ExecutionService.removeWorkerTask`): its
    directory is gone, so all its tasks run again in a fresh one, as its next attempt."""
    return spec.type == "WorkingDirectory"


def _phase_runs_to_discard(flow: Flow, runs: Sequence[TaskRunRow], failed: Sequence[TaskRunRow]) -> set[str]:
    """Task runs of the errors/finally (and the flow's afterExecution) phases of restarted parents, every task
    run of a restarted WorkingDirectory (see `_reruns_whole`), and everything under them."""
    parents = {r.parent_id for r in failed} | {r.id for r in failed if flow.task(r.task_id).branches}
    whole = {r.id for r in failed if _reruns_whole(flow.task(r.task_id))}
    phase_ids: set[str] = {r.id for r in runs if r.parent_id in whole}
    for parent_id in parents:
        spec = flow.task(next(r.task_id for r in runs if r.id == parent_id)) if parent_id else None
        errors = flow.errors if spec is None else spec.branches.get("errors", ())
        finally_ = flow.finally_ if spec is None else spec.branches.get("finally", ())
        # The flow's `afterExecution` too: it runs again once the restarted execution has ended
        # (Kestra's RestartCaseTest.restartFailedWithAfterExecution: 2 task runs right after the restart).
        after = flow.after_execution if spec is None else ()
        names = {t.id for t in (*errors, *finally_, *after)}
        phase_ids |= {r.id for r in runs if r.parent_id == parent_id and r.task_id in names}
    discard = set(phase_ids)
    changed = True
    while changed:  # and their descendants
        changed = False
        for run in runs:
            if run.parent_id in discard and run.id not in discard:
                discard.add(run.id)
                changed = True
    return discard


# ---- replay and state changes -------------------------------------------------------------------

_SETTABLE = frozenset({State.SUCCESS, State.WARNING, State.FAILED, State.KILLED})


def replay(
    engine: Engine,
    execution_id: str,
    *,
    task_run_id: str | None,
    revision: int | None,
    actor: str,
    inputs: Mapping[str, Any] | None = None,
    ledger: bool = False,
    live_from: str | None = None,
) -> ExecutionRow:
    """A new execution that starts again from a task run (or from the start), keeping what ran before it.

    Task runs created before the chosen one are copied (ended ones as they ended, its parents back to
    RUNNING); the chosen task run and everything after it run again. The original gets the label
    `system.replayed`, the copy names it as its parent and keeps its `originalId`.

    With `ledger`, the copy's model and agent tool calls are served from the original's records, up to the
    task `live_from` (from it on, in the flow's order, they are live again): `engine/ledger_replay.py`.
    """
    if live_from is not None and not ledger:
        raise ledger_replay.ReplayInvalid("liveFrom", "only a replay from the ledger (mode=ledger) goes live at a task")
    with engine.transaction() as session:
        old = lock_existing(engine, session, execution_id)
        flow_row = flows.live_revision(engine, session, old.namespace, old.flow_id, revision or old.flow_revision)
        flow = engine.flow_of(flow_row)
        runs = list(store.task_runs_of(session, execution_id))
        chosen = next((r for r in runs if r.id == task_run_id), None) if task_run_id else None
        if task_run_id and chosen is None:
            raise NoTaskToRestart(execution_id, task_run_id)
        if ledger:
            ledger_replay.check_live_from(flow, live_from)
        typed = coerce_declared(flow.inputs, inputs) if inputs is not None else dict(old.inputs)
        labels = [label for label in old.labels if label["key"] != "system.replayed"]
        new = engine.create_execution(session, flow_row, flow, typed, labels, actor=actor, trigger=old.trigger)
        new.original_id = old.original_id or old.id
        new.parent_execution_id = old.id
        payload: dict[str, Any] = {"replay": new.id}
        if ledger:
            # Written before the first dispatch: no task run of the copy can run before it knows it is served.
            store_ledger_replay.insert_ledger_replay(
                session, new.id, source_execution_id=old.id, live_from=live_from, at=store.utcnow()
            )
            payload |= {"mode": "ledger", "liveFrom": live_from}
        if chosen is not None:
            _copy_before(session, flow, runs, chosen, new.id, actor=actor)
        store.update_labels(session, old, [*old.labels, {"key": "system.replayed", "value": "true"}])
        store.append_audit(session, old.id, actor=actor, action="execution.replayed", subject=None, payload=payload)
    engine.dispatch(new.id, actor=actor)
    return new


def _copy_before(
    session: Session, flow: Flow, runs: Sequence[TaskRunRow], chosen: TaskRunRow, new_id: str, *, actor: str
) -> None:
    if compensation.is_compensation(flow, chosen.task_id):
        # Its parent is the task run it undoes, which ended: copied back to RUNNING it would run again.
        raise Conflict(
            f"task run {chosen.id} is a compensation: replay from a task of the flow, or restart the execution"
        )
    by_id = {r.id: r for r in runs}
    ancestors: set[str] = set()
    parent = by_id.get(chosen.parent_id or "")
    while parent is not None:
        ancestors.add(parent.id)
        parent = by_id.get(parent.parent_id or "")
    new_ids: dict[str, str] = {}
    for run in runs:  # creation order: a parent is always copied before its children
        if run.seq >= chosen.seq and run.id not in ancestors and not _beside(flow, by_id, run, chosen, ancestors):
            continue
        if run.parent_id is not None and run.parent_id not in new_ids:
            continue  # under something that is not copied
        parent_id = new_ids[run.parent_id] if run.parent_id else None
        copy_id = task_run_id(new_id, run.task_id, parent_id, run.iteration)
        new_ids[run.id] = copy_id
        state = State.RUNNING if run.id in ancestors else State(run.state)
        if run.id not in ancestors and not state.is_terminal:
            continue
        copy = TaskRunRow(
            id=copy_id,
            execution_id=new_id,
            task_id=run.task_id,
            parent_id=parent_id,
            iteration=run.iteration,
            value=run.value,
            state=str(state),
            state_history=list(run.state_history),
            attempt=run.attempt,
            attempts=list(run.attempts),
            outputs=run.outputs,
            decision=run.decision,
            retry_at=None,
            claim_owner=None,
            heartbeat_at=None,
            created_at=run.created_at,
            updated_at=store.utcnow(),
        )
        store.create_task_run(session, copy, actor=actor, payload={"replayed_from": run.id})
        # An agent's conversation goes with its task run: a later agent sharing its memory id still sees it.
        store_agent.copy_agent_run(session, run.id, to_task_run_id=copy_id, to_execution_id=new_id)


def _beside(
    flow: Flow, by_id: Mapping[str, TaskRunRow], run: TaskRunRow, chosen: TaskRunRow, ancestors: set[str]
) -> bool:
    """Whether `run` is no successor of `chosen`: their nearest common parent runs its children side by side."""
    if run.id == chosen.id:
        return False
    node: TaskRunRow | None = run
    while node is not None and node.parent_id is not None:
        if node.parent_id == chosen.id:
            return False  # under the chosen task run: it runs again with it
        if node.parent_id in ancestors:
            try:
                return plan.children_side_by_side(flow.task(by_id[node.parent_id].task_id))
            except KeyError:  # a task the replayed revision no longer has
                return False
        node = by_id.get(node.parent_id)
    return False  # the flow's root runs its tasks one after the other


def change_task_run_state(
    engine: Engine, execution_id: str, task_run_id: str, state: State, *, actor: str
) -> ExecutionRow:
    """Set an ended task run's state by hand (e.g. a failure accepted as SUCCESS); the flow then goes on."""
    if state not in _SETTABLE:
        raise Conflict(f"a task run can only be set to {', '.join(sorted(_SETTABLE))}, not {state}")
    with engine.transaction() as session:
        execution = lock_existing(engine, session, execution_id)
        run = store.get_task_run(session, task_run_id, lock=True)
        if run is None or run.execution_id != execution_id:
            raise NotFound("task run", task_run_id)
        if not State(run.state).is_terminal:
            raise Conflict(f"task run {task_run_id} has not ended ({run.state})")
        if run.state == state:
            # Already so: nothing changes, so nothing restarts (it used to rerun the whole ended execution).
            return execution
        store.record_transition(session, run, state, actor=actor, override=True)
        if State(execution.state).is_terminal:
            flow = flows.flow_of_execution(engine, session, execution)
            runs = list(store.task_runs_of(session, execution_id))
            by_id = {r.id: r for r in runs}
            parents = []
            parent = by_id.get(run.parent_id or "")
            while parent is not None:
                parents.append(parent)
                parent = by_id.get(parent.parent_id or "")
            for parent in parents:
                if State(parent.state).is_terminal:
                    store.record_transition(session, parent, State.RUNNING, actor=actor, override=True)
            discard = _phase_runs_to_discard(flow, runs, [run, *parents])
            for run_id in discard:
                store.discard_task_run(session, by_id[run_id], actor=actor)
            store.record_transition(
                session, execution, State.RESTARTED, actor=actor, override=True,
                values={"restarts": execution.restarts + 1, "ended_at": None},
            )  # fmt: skip
            if not _admit_restarted(engine, session, flow, execution):
                return execution
    engine.dispatch(execution_id, actor=actor)
    return execution


def change_status(engine: Engine, execution_id: str, state: State, *, actor: str) -> ExecutionRow:
    """Set an ended execution's final state by hand (Kestra's change-status); audited."""
    if not state.is_terminal:
        raise Conflict(f"an execution can only be set to a terminal state, not {state}")
    with engine.transaction() as session:
        execution = lock_existing(engine, session, execution_id)
        if not State(execution.state).is_terminal:
            raise Conflict(f"execution {execution_id} has not ended ({execution.state})")
        store.record_transition(session, execution, state, actor=actor, override=True)
    return execution
