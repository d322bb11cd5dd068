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
from orchestrator.core.errors import Conflict, NotFound
from orchestrator.core.flow import Flow, Input, TaskSpec
from orchestrator.core.inputs import coerce_declared
from orchestrator.core.plan import ChildLists, Snapshot, TaskRunView, decided_state
from orchestrator.core.states import State
from orchestrator.engine import flows
from orchestrator.engine.values import TaskRunCoordinates
from orchestrator.store.database import Session
from orchestrator.store.tables import ExecutionRow, TaskRunRow

if TYPE_CHECKING:
    from orchestrator.engine.facade import Engine

__all__ = [
    "branch_state",
    "decided",
    "ending_state",
    "expire_values",
    "in_loop",
    "is_waiting",
    "pause_after_wait",
    "resumed_output",
    "review",
    "review_values",
    "settle",
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
    store.pause_task_run(session, execution, row, due=due, actor=actor, enclosing=enclosing)


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
    with engine.transaction() as session:
        execution = store.lock_execution(session, execution_id)
        if execution is None:
            raise NotFound("execution", execution_id)
        flow: Flow = flows.flow_of_execution(engine, session, execution)
        runs = list(store.task_runs_of(session, execution_id))
        paused = [r for r in runs if State(r.state) is State.PAUSED and flow.task(r.task_id).type == rules.APPROVAL]
        if task_run_id is not None:
            paused = [r for r in paused if r.id == task_run_id]
            if not paused:
                raise Conflict(f"task run {task_run_id} of execution {execution_id} is not a paused approval")
        if not paused:
            raise Conflict(f"execution {execution_id} has no paused approval")
        if len(paused) > 1:
            raise Conflict(f"execution {execution_id} has {len(paused)} paused approvals: name one with taskRunId")
        row = paused[0]
        values = review_values(flow.task(row.task_id), row, decision, comment, inputs, actor=actor)
        store.record_transition(session, row, State.RUNNING, actor=actor, values=values)
        still_paused = any(State(r.state) is State.PAUSED for r in runs if r.id != row.id)
        if State(execution.state) is State.PAUSED and not still_paused:
            store.record_transition(session, execution, State.RUNNING, actor=actor)
    engine.dispatch(execution_id, actor=actor)
    return execution


def ending_state(snap: Snapshot) -> State | None:
    """The state an Approval ended the execution with (SUCCEED, CANCEL), or None while it goes on."""
    for run in snap.task_runs.values():
        ends = run.decision.get("ends")
        if isinstance(ends, str):
            return State(ends)
    return None


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
