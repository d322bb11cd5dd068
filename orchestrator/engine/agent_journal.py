"""The AIAgent journal: each agent task run's conversation in `agent_runs`, its approvals, its audit events.

Workers reach it through `AgentJournal(engine.sessions)` (they may not touch the store). The agent saves
its conversation after every model answer and every tool result, so a worker lost mid-agent costs at
most the step in flight: the task run's next claim (a take-over of the same attempt) resumes from the
last saved turn. A tool that needs approval pauses the task run with the proposed call in its outputs;
`apply_approval` (called by the resume operation, in its transaction) records who decided what.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from orchestrator import store
from orchestrator.core.errors import InputInvalid
from orchestrator.core.states import State
from orchestrator.store import agent as store_agent
from orchestrator.store.audit_chain import last_audit_hash
from orchestrator.store.database import Session, read_only, sessionmaker, transaction
from orchestrator.store.tables import TaskRunRow

AWAITING_APPROVAL = "AWAITING_APPROVAL"
_APPROVE = {"approve", "approved", "true", "yes"}
_REJECT = {"reject", "rejected", "false", "no"}


@dataclass(frozen=True)
class AgentRecord:
    """One agent task run's saved state."""

    attempt: int
    status: str
    conversation: dict[str, Any]
    approvals: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ToolRunResult:
    """How a tool's child task run ended."""

    state: State
    outputs: dict[str, Any] | None
    error: str | None
    waiting: bool  #: a flow tool's task run waiting for its subflow execution to end
    idle_s: float  #: seconds since its last heartbeat (or creation): long idle means lost


class AgentJournal:
    """Save and load agent conversations over a database."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def load(self, task_run_id: str) -> AgentRecord | None:
        with read_only(self._sessions) as session:
            row = store_agent.get_agent_run(session, task_run_id)
            if row is None:
                return None
            return AgentRecord(row.attempt, row.status, dict(row.conversation), dict(row.approvals or {}))

    def save(
        self,
        *,
        task_run_id: str,
        execution_id: str,
        task_id: str,
        attempt: int,
        owner: str,
        memory_id: str | None,
        status: str,
        conversation: dict[str, Any],
        also: Callable[[Session], None] | None = None,
    ) -> bool:
        """Save a turn while this worker still owns the task run; False once it was taken over or ended.

        `also` writes in the same transaction, only when the turn is saved (the agent's memory, at its end).
        """
        with transaction(self._sessions) as session:
            run = store.get_task_run(session, task_run_id, lock=True)
            if run is None or State(run.state) is not State.RUNNING or run.claim_owner != owner:
                return False
            before = store_agent.get_agent_run(session, task_run_id, lock=True)
            store_agent.save_agent_run(
                session,
                {
                    "task_run_id": task_run_id, "execution_id": execution_id, "task_id": task_id,
                    "attempt": attempt, "memory_id": memory_id, "status": status,
                    "conversation": conversation, "updated_at": store.utcnow(),
                },
                keep_approvals=before is not None and before.attempt == attempt,
            )  # fmt: skip
            if also is not None:
                also(session)
            return True

    def tool_run(self, execution_id: str, task_run_id: str) -> ToolRunResult | None:
        """The state, outputs and (when it failed) error of a tool's child task run."""
        with read_only(self._sessions) as session:
            row = store.get_task_run(session, task_run_id)
            if row is None:
                return None
            state = State(row.state)
            error = None
            if state.is_failure:
                lines = store.log_lines_of(session, execution_id, task_run_id=task_run_id)
                errors = [line.message for line in lines if line.level == "ERROR"]
                error = errors[-1] if errors else f"ended {state}"
            waiting = bool((row.decision or {}).get("subflow"))
            # Heartbeats are stamped by the database's clock: the idle time is measured by it too.
            idle_s = (store.db_now(session) - (row.heartbeat_at or row.updated_at)).total_seconds()
            return ToolRunResult(state, dict(row.outputs) if row.outputs else None, error, waiting, idle_s)

    def audit_hash(self, execution_id: str, task_run_id: str) -> str | None:
        """The hash of the last audit event about a tool's task run (its end): the agent's trace links to it."""
        with read_only(self._sessions) as session:
            return last_audit_hash(session, execution_id, task_run_id)

    def pending_call(self, agent_task_run_id: str, index: int) -> dict[str, Any] | None:
        """The tool call numbered `index` that an agent task run is waiting on (what its tool task run needs)."""
        record = self.load(agent_task_run_id)
        pending = (record.conversation.get("pending") or []) if record is not None else []
        return next((p for p in pending if p.get("index") == index), None)

    def audit(self, execution_id: str, *, actor: str, action: str, subject: str, payload: dict[str, Any]) -> None:
        """An agent event on the execution's audit chain (an MCP tool call, an approval asked)."""
        with transaction(self._sessions) as session:
            store.append_audit(session, execution_id, actor=actor, action=action, subject=subject, payload=payload)


def apply_approval(session: Session, run: TaskRunRow, inputs: Mapping[str, Any], *, actor: str) -> None:
    """Record the decision on a paused agent's proposed tool call (resume inputs), audited with its decider.

    A no-op for any other paused task run. The agent's task run is left free to be claimed again.
    """
    record = store_agent.get_agent_run(session, run.id, lock=True)
    if record is None or record.status != AWAITING_APPROVAL:
        return
    proposal = (record.conversation or {}).get("approval") or {}
    call_id = str(proposal.get("toolCallId"))
    decision = _decision(inputs, proposal)
    reason = inputs.get("reason")
    entry = {"decision": decision, "by": actor, "at": store.iso(store.utcnow())}
    if reason:
        entry["reason"] = str(reason)
    record.approvals = {**(record.approvals or {}), call_id: entry}
    record.status = "RUNNING"
    run.heartbeat_at = None  # nobody holds it while paused: the next claim takes it at once
    # The pause is decided: the agent's own journal carries the approval from here. A task run with a decision
    # is continued by the planner, never taken over by a claim, and the agent must be claimed again to go on.
    run.decision = None
    store.append_audit(
        session,
        run.execution_id,
        actor=actor,
        action="agent.tool_approved" if decision == "APPROVED" else "agent.tool_rejected",
        subject=run.id,
        payload={
            "task_id": run.task_id,
            "tool_call_id": call_id,
            "tool": proposal.get("tool"),
            "arguments": proposal.get("arguments"),
            **({"reason": str(reason)} if reason else {}),
        },
    )


def _decision(inputs: Mapping[str, Any], proposal: Mapping[str, Any]) -> str:
    raw = inputs.get("decision", inputs.get("approve", inputs.get("approved")))
    text = str(raw).strip().lower() if raw is not None else ""
    if text in _APPROVE:
        return "APPROVED"
    if text in _REJECT:
        return "REJECTED"
    raise InputInvalid(
        "decision",
        f"the execution waits for an approval of tool call {proposal.get('tool')} "
        f"({proposal.get('toolCallId')}): resume with decision=APPROVE or decision=REJECT (and an optional reason)",
    )
