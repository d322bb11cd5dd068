"""Decisions on paused executions: approve or reject what a Pause or a gated agent tool call waits for.

Resume (Kestra's) continues every paused task run with the same `onResume` inputs and is for operators
and scripts. An approval is a person's decision with a reason, made with `execution.resume` only:

- approve: the paused task run continues, a Pause with its `onResume` values as outputs;
- reject: a plain Pause ends FAILED with the reason (so the flow's `errors` branch runs and the
  execution ends FAILED, as when a Pause's timeout passes with `behavior: FAIL`), not KILLED, which
  stays an operator's `execution.control` act; a gated agent tool call is reported to the model as
  rejected and the agent goes on.

A decision may name one paused task run (`task_run_id`): two paused agents of one execution then get
their own decision each. Like a Pause whose delay ends, a decided task run waits while another of the
execution is still paused: the execution runs again when nothing of it waits for a person any more.
Each decision is one `execution.approved` / `execution.rejected` audit event with its reason and the
`onResume` values given (SECRET ones masked).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from orchestrator import store
from orchestrator.core.decision import TaskRunDecision
from orchestrator.core.errors import Conflict, InputInvalid, NotFound
from orchestrator.core.flow import Flow, Input
from orchestrator.core.inputs import coerce_declared
from orchestrator.core.states import State
from orchestrator.engine import agent_journal, flows, operations
from orchestrator.engine.facade import Engine
from orchestrator.store import agent as store_agent
from orchestrator.store.database import Session
from orchestrator.store.tables import ExecutionRow, TaskRunRow


@dataclass(frozen=True)
class PausedTaskRun:
    """What one paused task run waits for, as an approver is shown it."""

    task_run_id: str
    task_id: str
    value: str | None
    kind: str  #: "pause", "agent-tool" (a gated tool call) or "timer" (a Pause that resumes by itself)
    description: str | None  #: rendered when the Pause paused; the raw text when it could not be
    on_resume: list[dict[str, Any]]  #: the `onResume` input declarations
    proposal: dict[str, Any] | None  #: an agent's proposed tool call


def pending(engine: Engine, execution_id: str) -> list[PausedTaskRun]:
    """The paused task runs of an execution and what each asks (an empty list for a hand-paused one)."""
    with engine.sessions() as session:
        execution = store.get_execution(session, execution_id)
        if execution is None:
            raise NotFound("execution", execution_id)
        flow = flows.flow_of_execution(engine, session, execution)
        found = []
        for run in store.waiting_task_runs(store.task_runs_of(session, execution_id)):
            task = flow.task(run.task_id)
            decision = run.decision or TaskRunDecision()
            agent = store_agent.get_agent_run(session, run.id)
            awaiting = agent is not None and agent.status == agent_journal.AWAITING_APPROVAL
            kind = "agent-tool" if awaiting else "timer" if decision.get("on_due") == "resume" else "pause"
            declared = task.properties.get("onResume")
            found.append(
                PausedTaskRun(
                    task_run_id=run.id,
                    task_id=run.task_id,
                    value=run.value,
                    kind=kind,
                    description=decision.get("description", task.description),
                    on_resume=[dict(d) for d in declared if isinstance(d, dict)] if isinstance(declared, list) else [],
                    proposal=dict((run.outputs or {}).get("approval") or {}) if awaiting else None,
                )
            )
        return found


def decide(
    engine: Engine,
    execution_id: str,
    *,
    approve: bool,
    reason: str | None,
    inputs: Mapping[str, Any],
    task_run_id: str | None,
    actor: str,
) -> ExecutionRow:
    """Approve or reject what an execution (or one of its paused task runs) waits for; audited."""
    with engine.transaction() as session:
        execution = operations.lock_existing(engine, session, execution_id)
        if State(execution.state) is not State.PAUSED:
            raise Conflict(f"execution {execution_id} is not paused ({execution.state})")
        flow = flows.flow_of_execution(engine, session, execution)
        paused = store.waiting_task_runs(store.task_runs_of(session, execution_id))
        if task_run_id is not None:
            paused = [r for r in paused if r.id == task_run_id]
            if not paused:
                raise InputInvalid("taskRunId", f"task run {task_run_id} of execution {execution_id} is not paused")
        if not paused and not approve:
            raise Conflict(f"execution {execution_id} was paused by hand: resume it, or kill it to stop it")
        shown: dict[str, Any] = {}
        for run in paused:
            shown.update(_decide_task_run(session, flow, run, approve, reason, inputs, actor=actor))
        still_paused = any(
            State(r.state) is State.PAUSED for r in store.task_runs_of(session, execution_id) if r not in paused
        )
        if not still_paused:
            store.record_transition(session, execution, State.RUNNING, actor=actor)
        payload: dict[str, Any] = {"taskRunIds": [r.id for r in paused], "taskIds": [r.task_id for r in paused]}
        if reason:
            payload["reason"] = reason
        if shown:
            payload["onResume"] = shown
        store.append_audit(
            session,
            execution_id,
            actor=actor,
            action="execution.approved" if approve else "execution.rejected",
            subject=execution_id,
            payload=payload,
        )
    engine.dispatch(execution_id, actor=actor)
    return execution


def _decide_task_run(
    session: Session,
    flow: Flow,
    run: TaskRunRow,
    approve: bool,
    reason: str | None,
    inputs: Mapping[str, Any],
    *,
    actor: str,
) -> dict[str, Any]:
    """Decide one paused task run; returns the `onResume` values it took, as they may be shown."""
    agent = store_agent.get_agent_run(session, run.id)
    if agent is not None and agent.status == agent_journal.AWAITING_APPROVAL:
        decision = {"decision": "APPROVE" if approve else "REJECT", **({"reason": reason} if reason else {})}
        agent_journal.apply_approval(session, run, decision, actor=actor)
        store.record_transition(session, run, State.RUNNING, actor=actor, values={"retry_at": None})
        return {}
    if not approve:
        because = f"rejected by {actor}" + (f": {reason}" if reason else "")
        store.record_transition(
            session, run, State.FAILED, actor=actor, payload={"reason": because}, values={"retry_at": None}
        )
        return {}
    declared = flow.task(run.task_id).properties.get("onResume")
    specs = [Input.model_validate(d) for d in declared] if isinstance(declared, list) and declared else []
    values: dict[str, Any] = {"retry_at": None}
    taken: dict[str, Any] = {}
    if specs:
        taken = coerce_declared(specs, inputs)
        values["outputs"] = {**(run.outputs or {}), "onResume": taken}
    payload = {"reason": reason} if reason else None
    store.record_transition(session, run, State.RUNNING, actor=actor, payload=payload, values=values)
    return operations.masked_resume_values(specs, taken)
