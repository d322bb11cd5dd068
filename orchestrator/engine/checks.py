"""Kestra 2 at execution creation: flow `checks`, and executions created FAILED instead of dropped.

`checks` are rendered against the typed inputs before an execution exists (Kestra's `Check`): the
failed checks' behaviour decides: BLOCK_EXECUTION refuses the request, FAIL_EXECUTION creates the
execution already FAILED, CREATE_EXECUTION creates it as usual. A Flow trigger whose inputs cannot be
rendered creates a FAILED execution too (Kestra 2.0), so the failure shows where users look.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from orchestrator import store
from orchestrator.core.errors import ExecutionBlocked
from orchestrator.core.flow import Flow
from orchestrator.core.kestra2 import failed_checks
from orchestrator.core.states import State
from orchestrator.store.database import Session
from orchestrator.store.tables import ExecutionRow

if TYPE_CHECKING:
    from orchestrator.core.flow import Label

__all__ = ["check_verdict", "fail_at_creation"]


def check_verdict(flow: Flow, inputs: dict[str, Any], labels: list[dict[str, str]]) -> tuple[str, list[str]]:
    """The checks' behaviour for these inputs; raise ExecutionBlocked when it is BLOCK_EXECUTION."""
    if not flow.checks:
        return "CREATE_EXECUTION", []
    declared: tuple[Label, ...] = flow.labels
    variables = {
        "inputs": inputs,
        "flow": {"id": flow.id, "namespace": flow.namespace},
        "labels": {**{label.key: label.value for label in declared}, **{x["key"]: x["value"] for x in labels}},
    }
    behavior, messages = failed_checks(flow.checks, variables)
    if behavior == "BLOCK_EXECUTION":
        raise ExecutionBlocked(messages)
    return behavior, messages


def fail_at_creation(session: Session, execution: ExecutionRow, message: str, *, actor: str) -> None:
    """End a just-created execution FAILED, with `message` as its error log, before any task runs."""
    store.insert_log_lines(
        session,
        [
            {
                "execution_id": execution.id,
                "task_run_id": None,
                "task_id": None,
                "attempt": None,
                "namespace": execution.namespace,
                "flow_id": execution.flow_id,
                "level": "ERROR",
                "message": message,
                "at": store.utcnow(),
            }
        ],
    )
    store.record_transition(session, execution, State.FAILED, actor=actor, payload={"error": message})
