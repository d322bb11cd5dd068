"""A ledger replay's agent tool calls: a served tool task run ends as its twin in the original ended, unrun.

The agent itself decides which tools to call from its (ledger-served) model answers, so its tool calls
are the original's; each one's child task run takes the twin's recorded state and outputs instead of
running its task again (a task tool, a flow tool's subflow, an MCP call). From `liveFrom` on, they run.
"""

from __future__ import annotations

from datetime import UTC, datetime

from orchestrator.core import agent as rules
from orchestrator.core.states import State
from orchestrator.engine import ClaimedTaskRun, Engine, LogRecord, TaskOutcome


def served_tool_outcome(engine: Engine, claimed: ClaimedTaskRun) -> TaskOutcome | None:
    """The outcome of an agent's tool call served from the ledger, or None when it is to run."""
    at = claimed.coordinates
    if at.parent_id is None or at.iteration is None:
        return None
    if rules.agent_of_tool(claimed.flow.iter_tasks(), at.task_id) is None:
        return None
    replays = engine.ledger_replays()
    served = replays.served(at, claimed.flow)
    if served is None:
        return None
    recorded = replays.recorded_outputs(served)
    if recorded is None or not recorded[0].is_terminal:
        return TaskOutcome(
            State.FAILED,
            error=f"replay from the ledger: execution {served.source_execution_id} has no ended tool call "
            f"{served.source_task_run_id} ({at.task_id} #{at.iteration}); the tool was not run",
            retryable=False,
        )
    state, outputs = recorded
    note = LogRecord(
        "INFO",
        f"served from the ledger: tool call {served.source_task_run_id} of execution "
        f"{served.source_execution_id} ended {state} (the tool was not run)",
        datetime.now(UTC),
    )
    error = f"as in execution {served.source_execution_id}: the tool call ended {state}" if state.is_failure else None
    return TaskOutcome(state, outputs=outputs, logs=(note,), error=error, retryable=False)
