"""Approval task runs in the engine: pause after `onWait`, take a reviewer's decision, expire, settle.

The rules live in orchestrator.core.approval; this module applies them to task-run rows inside the
caller's transaction (the engine's join, a resume, the timer). An Approval's decision record moves
through: {"awaiting": True} while `onWait` runs and while paused, then {"approval": DECISION,
"branch": ...} once decided; its outputs follow Kestra's (`decision`, `auto`, `by`, `on`, `comment`,
`inputs`, `due`, `url`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from orchestrator import store
from orchestrator.core import approval as rules
from orchestrator.core.decision import TaskRunDecision
from orchestrator.core.errors import Conflict, InputInvalid, NotFound
from orchestrator.core.flow import Flow, Input, TaskSpec
from orchestrator.core.ids import task_run_id
from orchestrator.core.inputs import coerce_declared
from orchestrator.core.plan import ChildLists, Snapshot, TaskRunView, children_side_by_side, decided_state
from orchestrator.core.states import State
from orchestrator.engine import flows
from orchestrator.engine.values import TaskRunCoordinates
from orchestrator.store.database import Session
from orchestrator.store.tables import ExecutionRow, TaskRunRow

if TYPE_CHECKING:
    from orchestrator.engine.facade import Engine

__all__ = [
    "branch_state",
    "cancel",
    "decided",
    "ending_state",
    "expire_values",
    "in_loop",
    "is_waiting",
    "park_if_idle",
    "pause_after_wait",
    "resumed_output",
    "review",
    "review_values",
    "settle",
    "skip_unstarted",
    "unwaited",
    "wake",
]

#: The decision and comment of a plain resume (its form fields); the rest are the review dialog's inputs.
DECISION_FIELDS = ("decision", "comment")


#: Tasks that run a branch before they park: Approval's `onWait`, Pause's `onPause`.
_WAITING_TYPES = (rules.APPROVAL, "Pause")


def person(actor: str | None) -> str | None:
    """The user behind an audit actor (`user:alice@10.0.0.1`, `token:alice/ci@...`); None for the system."""
    if not actor:
        return None
    who = actor.rsplit("@", 1)[0] if "@" in actor else actor
    kind, _, name = who.partition(":")
    if kind == "user":
        return name
    if kind == "token":
        return name.split("/", 1)[0]
    return None


def is_waiting(spec: TaskSpec | None, row: TaskRunRow | None) -> bool:
    """An Approval (or a Pause with `onPause`) still running its first branch, or paused, not resumed yet."""
    if spec is None or row is None or spec.type not in _WAITING_TYPES:
        return False
    decision = row.decision or {}
    return bool(decision.get("awaiting")) and not decision.get("approval")


def decided(spec: TaskSpec | None, row: TaskRunRow | None) -> rules.DecisionType | None:
    """The decision an Approval task run took, or None (not an Approval, or undecided)."""
    if spec is None or row is None or spec.type != rules.APPROVAL:
        return None
    value = (row.decision or {}).get("approval")
    return rules.DecisionType(value) if isinstance(value, str) else None


def pause_after_wait(
    session: Session,
    execution: ExecutionRow,
    flow: Flow,
    row: TaskRunRow,
    spec: TaskSpec,
    *,
    actor: str,
    enclosing: Sequence[TaskRunRow] = (),
) -> None:
    """`onWait` (`onPause`) ended without failing: the task run parks; an Approval's `timeout` counts from now
    (a Pause keeps the wake-up its decision set). `enclosing` Loop task runs pause with it."""
    now = store.transaction_now(session)  # the expiry: by the database clock
    decision: TaskRunDecision = {**(row.decision or {}), "pause": True}
    outputs = dict(row.outputs or {})
    if spec.type == rules.APPROVAL:
        due = now + spec.timeout if spec.timeout else None
        if due is not None:
            decision.update({"due": due.isoformat(), "on_due": "expire"})
            outputs["due"] = due.isoformat()
    else:
        planned = decision.get("due")
        due = datetime.fromisoformat(planned) if isinstance(planned, str) else None
    row.decision, row.outputs = decision, outputs
    # Kestra's execution is PAUSING while an `onWait` (`onPause`) runs and PAUSED once none does: while a
    # sibling Approval still runs its own, the execution stays RUNNING, so every paused approval of it is
    # ready for review when it reads PAUSED (ApprovalTest#shouldPauseSiblingApprovalsIndependently).
    park = not still_waiting(session, flow, execution.id, but=row.id)
    store.pause_task_run(session, execution, row, due=due, actor=actor, enclosing=enclosing, park_execution=park)


def still_waiting(session: Session, flow: Flow, execution_id: str, *, but: str) -> bool:
    """Whether a task run of the execution other than `but` is still on its way to a pause: running its `onWait`
    (`onPause`), or an Approval (Pause) beside `but` under a Parallel that has not decided yet (its row not
    created, or created and not decided: Kestra creates a Parallel's children at once)."""
    runs = list(store.task_runs_of(session, execution_id))
    if any(r.id != but and State(r.state) is State.RUNNING and is_waiting(flow.task(r.task_id), r) for r in runs):
        return True
    row = next((r for r in runs if r.id == but), None)
    parent = next((r for r in runs if row is not None and r.id == row.parent_id), None)
    if row is None or parent is None or not children_side_by_side(flow.task(parent.task_id)):
        return False
    by_coordinates = {(r.task_id, r.parent_id, r.iteration): r for r in runs}
    for sibling in flow.task(parent.task_id).branches.get("tasks", ()):
        if sibling.type not in _WAITING_TYPES or sibling.id == row.task_id or sibling.disabled:
            continue
        other = by_coordinates.get((sibling.id, parent.id, row.iteration))
        if other is None or (State(other.state) is State.RUNNING and not other.decision):
            return True
    return False


def park_if_idle(session: Session, flow: Flow, execution: ExecutionRow, ended: TaskRunRow, *, actor: str) -> None:
    """`ended`'s `onWait` failed: when the execution holds a paused task run and no other `onWait` runs, it is
    PAUSED now (the pause `pause_after_wait` left to the last approval on its way)."""
    if State(execution.state) is not State.RUNNING or still_waiting(session, flow, execution.id, but=ended.id):
        return
    if any(State(r.state) is State.PAUSED for r in store.task_runs_of(session, execution.id)):
        store.record_transition(session, execution, State.PAUSED, actor=actor)


def _decided_values(
    row: TaskRunRow, decision: rules.DecisionType, outputs: Mapping[str, Any], *, now: datetime
) -> dict[str, Any]:
    record = {k: v for k, v in (row.decision or {}).items() if k not in ("pause", "due", "on_due", "awaiting")}
    record.update(approval=str(decision), branch=rules.branch_of(decision))
    merged = {**(row.outputs or {}), "decision": str(decision), "auto": False, "on": now.isoformat(), **outputs}
    return {"retry_at": None, "decision": record, "outputs": merged}


def review_values(
    spec: TaskSpec,
    row: TaskRunRow,
    decision: rules.DecisionType,
    comment: str | None,
    inputs: Mapping[str, Any],
    *,
    actor: str,
) -> dict[str, Any]:
    """What a reviewer's decision writes on the paused task run; InputInvalid when the review is incomplete."""
    settings = (row.decision or {}).get("settings") or {}
    rules.check_comment(settings.get("commentRequired"), decision, comment)
    declared = spec.properties.get("inputs")
    specs = [Input.model_validate(d) for d in declared] if isinstance(declared, list) else []
    typed = coerce_declared(specs, inputs) if specs else {}
    return _decided_values(
        row, decision, {"by": person(actor), "comment": comment, "inputs": typed}, now=store.utcnow()
    )


def resume_values(spec: TaskSpec, row: TaskRunRow, inputs: Mapping[str, Any], *, actor: str) -> dict[str, Any]:
    """A plain resume of a paused Approval: its `decision` field (APPROVED when absent) and `comment`."""
    raw = inputs.get("decision")
    decision = rules.parse_decision(raw) if raw not in (None, "") else rules.DecisionType.APPROVED
    comment = inputs.get("comment")
    rest = {k: v for k, v in inputs.items() if k not in DECISION_FIELDS}
    return review_values(spec, row, decision, str(comment) if comment else None, rest, actor=actor)


def expire_values(row: TaskRunRow) -> dict[str, Any]:
    """The `timeout` passed with no decision: EXPIRED, no branch, `due` kept in the outputs."""
    due = (row.decision or {}).get("due")
    return _decided_values(row, rules.DecisionType.EXPIRED, {"by": None, "due": due}, now=store.utcnow())


def settle(spec: TaskSpec, row: TaskRunRow, branch_state: State) -> tuple[State, State | None]:
    """A decided Approval whose branch ended: its own state, and the execution's when the behaviour ends it."""
    if spec.type == "Pause" and (row.decision or {}).get("terminal") == str(State.WARNING):
        # `behavior: WARN` once `pauseDuration` passed: a Pause that would succeed ends in WARNING.
        return (State.WARNING if branch_state is State.SUCCESS else branch_state), None
    decision = decided(spec, row)
    if decision is None:
        return branch_state, None
    behavior = rules.behavior_of((row.decision or {}).get("settings") or {}, decision)
    return rules.final_state(behavior, branch_state), rules.execution_outcome(behavior, branch_state)


#: Kestra's ExecutionService.APPROVAL_COMMENT_MAX_LENGTH.
COMMENT_MAX_LENGTH = 4096


def _paused_approval(flow: Flow, runs: Sequence[TaskRunRow], task_run_id: str) -> TaskRunRow:
    """The Approval task run a reviewer names, as Kestra's ExecutionController checks it: 404 when the execution
    has no such task run, 422 when it is not an Approval, 409 when it is not paused (decided or cancelled)."""
    row = next((r for r in runs if r.id == task_run_id), None)
    if row is None:
        raise NotFound("task run", task_run_id)
    if flow.task(row.task_id).type != rules.APPROVAL:
        raise InputInvalid("taskRunId", f"task run {task_run_id} ({row.task_id}) is not an Approval task")
    if State(row.state) is not State.PAUSED:
        raise Conflict(f"task run {task_run_id} is not paused, it was already decided or cancelled")
    return row


def _only_paused_approval(flow: Flow, runs: Sequence[TaskRunRow], execution_id: str) -> TaskRunRow:
    paused = [r for r in runs if State(r.state) is State.PAUSED and flow.task(r.task_id).type == rules.APPROVAL]
    if not paused:
        raise Conflict(f"execution {execution_id} has no paused approval")
    if len(paused) > 1:
        raise Conflict(f"execution {execution_id} has {len(paused)} paused approvals: name one with taskRunId")
    return paused[0]


def review(
    engine: Engine,
    execution_id: str,
    task_run_id: str | None,
    decision: rules.DecisionType,
    comment: str | None,
    inputs: Mapping[str, Any],
    *,
    actor: str,
) -> ExecutionRow:
    """Decide one paused Approval (the only one when `task_run_id` is None); the execution stays PAUSED
    while another task run of it is still paused, as Kestra's markAs keeps it."""
    if comment is not None and len(comment) > COMMENT_MAX_LENGTH:
        raise InputInvalid("comment", f"the comment of a decision cannot exceed {COMMENT_MAX_LENGTH} characters")
    with engine.transaction() as session:
        execution, flow, runs, row = _lock_paused_approval(engine, session, execution_id, task_run_id)
        values = review_values(flow.task(row.task_id), row, decision, comment, inputs, actor=actor)
        store.record_transition(session, row, State.RUNNING, actor=actor, values=values)
        still_paused = any(State(r.state) is State.PAUSED for r in runs if r.id != row.id)
        if State(execution.state) is State.PAUSED and not still_paused:
            store.record_transition(session, execution, State.RUNNING, actor=actor)
    engine.dispatch(execution_id, actor=actor)
    return execution


def _lock_paused_approval(
    engine: Engine, session: Session, execution_id: str, task_run_id: str | None
) -> tuple[ExecutionRow, Flow, list[TaskRunRow], TaskRunRow]:
    """The execution (locked), its flow, its task runs and the paused Approval a request names (the only one when
    `task_run_id` is None): what a decision and a cancellation both act on."""
    execution = store.lock_execution(session, execution_id)
    if execution is None:
        raise NotFound("execution", execution_id)
    flow: Flow = flows.flow_of_execution(engine, session, execution)
    runs = list(store.task_runs_of(session, execution_id))
    if task_run_id is None:
        return execution, flow, runs, _only_paused_approval(flow, runs, execution_id)
    return execution, flow, runs, _paused_approval(flow, runs, task_run_id)


def cancel(engine: Engine, execution_id: str, task_run_id: str | None, *, actor: str) -> ExecutionRow:
    """Kestra's ExecutionService.cancelApproval: the request ends without a decision. The Approval task run is
    CANCELLED (no branch runs) and so is the execution, at once: no later task, no `finally` (Kestra's markAs
    cancels the execution immediately)."""
    from orchestrator.engine import operations  # operations uses this module: imported when needed

    with engine.transaction() as session:
        execution, _, _, row = _lock_paused_approval(engine, session, execution_id, task_run_id or None)
        now = store.utcnow()
        outputs = {**(row.outputs or {}), "decision": None, "auto": False, "by": person(actor), "on": now.isoformat()}
        record = {k: v for k, v in (row.decision or {}).items() if k not in ("pause", "due", "on_due", "awaiting")}
        values = {
            "retry_at": None,
            "outputs": outputs,
            "decision": {**record, "cancelled": True},
            "attempts": store.close_attempt(row.attempts, State.CANCELLED, now),
        }
        store.record_transition(session, row, State.CANCELLED, actor=actor, values=values)
    operations.stop(engine, execution_id, State.CANCELLED, actor=actor, payload={"reason": "approval cancelled"})
    return execution


def ending_state(snap: Snapshot) -> State | None:
    """The state an Approval ended the execution with (SUCCEED, CANCEL), or None while it goes on."""
    for run in snap.task_runs.values():
        ends = run.decision.get("ends")
        if isinstance(ends, str):
            return State(ends)
    return None


def skip_unstarted(session: Session, execution: ExecutionRow, lists: ChildLists, snap: Snapshot, *, actor: str) -> None:
    """An Approval ended the execution (SUCCEED, CANCEL) and the flow has a `finally`: the flow's main tasks that
    never started are recorded SKIPPED before `finally` runs, as Kestra's executor leaves them
    (ApprovalTest#shouldRunTheFlowFinallyWhenTheApprovalIsDenied: `after` has one SKIPPED task run; without a
    flow `finally`, #shouldCancelExecutionOnDenyByDefault finds none)."""
    now = store.utcnow()
    for slot in lists.main_slots:
        if slot.iteration is not None or snap.get(slot.task.id, None) is not None:
            continue
        row = TaskRunRow(
            id=task_run_id(execution.id, slot.task.id, None, None),
            execution_id=execution.id,
            task_id=slot.task.id,
            parent_id=None,
            iteration=None,
            value=None,
            state=str(State.SKIPPED),
            state_history=[
                {"state": str(State.CREATED), "date": store.iso(now)},
                {"state": str(State.SKIPPED), "date": store.iso(now)},
            ],
            attempt=1,
            attempts=[],
            outputs=None,
            decision=None,
            retry_at=None,
            claim_owner=None,
            heartbeat_at=None,
            created_at=now,
            updated_at=now,
        )
        store.create_task_run(session, row, actor=actor, payload={"reason": "the execution ended by an approval"})


def in_loop(flow: Flow, snap: Snapshot, row: TaskRunRow) -> bool:
    """Whether a task run sits in a Loop iteration (its ancestors include a Loop)."""
    parent = snap.task_runs.get(row.parent_id or "")
    while parent is not None:
        if flow.task(parent.task_id).type == "Loop":
            return True
        parent = snap.task_runs.get(parent.parent_id or "")
    return False


def unwaited(decision: Mapping[str, Any] | None) -> dict[str, Any]:
    """A resumed Pause that ran `onPause` first: its `tasks` run now."""
    record = {k: v for k, v in (decision or {}).items() if k != "awaiting"}
    if (decision or {}).get("awaiting"):
        record["branch"] = "tasks"
    return record


def resumed_output(actor: str | None, to: State) -> dict[str, Any]:
    """Kestra's `resumed` output of a Pause: who resumed it, when, and to which state."""
    return {"by": person(actor), "on": store.utcnow().replace(tzinfo=None).isoformat(), "to": str(to)}


def wake(row: TaskRunRow) -> tuple[State, dict[str, Any], State | None]:
    """A paused task run whose time came: its new state, what to write, and the state the execution ends
    in when it ends it. A Pause's `pauseDuration` applies its `behavior` (RESUME, WARN, FAIL, CANCEL), its
    `timeout` fails it (through its join, which runs its `errors` and `finally`); an Approval's `timeout`
    expires it."""
    decision = row.decision or {}
    on_due = decision.get("on_due")
    if on_due == "expire":
        return State.RUNNING, expire_values(row), None
    if on_due == "timeout":
        # Kestra's Pause fails on its `timeout` like any task: its own `errors` and `finally` then run and
        # `allowFailure` makes it a WARNING the flow goes on after; its join decides that (plan.ChildLists.failed).
        return State.RUNNING, {"retry_at": None, "decision": {**unwaited(decision), "timed_out": True}}, None
    behavior = str(decision.get("behavior") or "RESUME")
    to = {"WARN": State.WARNING, "FAIL": State.FAILED, "CANCEL": State.CANCELLED}.get(behavior, State.SUCCESS)
    values: dict[str, Any] = {
        "retry_at": None,
        "decision": {**unwaited(decision), "terminal": str(to)},
        "outputs": {**(row.outputs or {}), "resumed": resumed_output(None, to)},
    }
    if to in (State.FAILED, State.CANCELLED):
        return to, values, State.CANCELLED if to is State.CANCELLED else None
    return State.RUNNING, values, None


def branch_state(spec: TaskSpec | None, lists: ChildLists, children: Sequence[TaskRunView]) -> State:
    """A decided Approval's state from its children, `onWait`'s left out (Kestra's resolveBranchState)."""
    on_wait = {t.id for t in (spec.branches.get("onWait", ()) if spec is not None else ())}
    return decided_state(lists, [c for c in children if c.task_id not in on_wait])


def runs_while_paused(session: Session, flow: Flow, at: TaskRunCoordinates) -> bool:
    """Whether a task run may start in a paused execution: an Approval, or a task of an `onWait` still
    running (of an Approval, or `onPause` of a Pause), so every approval of the execution reaches review."""
    if flow.task(at.task_id).type == rules.APPROVAL:
        return True
    parent_id = at.parent_id
    while parent_id is not None:
        parent = store.get_task_run(session, parent_id)
        if parent is None:
            return False
        if is_waiting(flow.task(parent.task_id), parent) and State(parent.state) is State.RUNNING:
            return True
        parent_id = parent.parent_id
    return False
