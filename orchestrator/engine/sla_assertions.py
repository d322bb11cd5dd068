"""EXECUTION_ASSERTION SLAs: checked each time a running execution changes, as Kestra's executor does.

An assertion that renders falsy is a violation. As in Kestra's `ExecutorService.handleExecutionChangedSLA`,
only the first violation acts: FAIL or CANCEL ends the execution in that state, NONE leaves it running; its
`labels` are added once. Assertions that cannot render are logged and skipped.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from orchestrator import store
from orchestrator.core.errors import Conflict, ExpressionError
from orchestrator.core.expressions import is_true, render
from orchestrator.core.flow import Flow
from orchestrator.core.states import State
from orchestrator.engine import flows, operations
from orchestrator.engine.variables import base_variables
from orchestrator.hooks import Transition
from orchestrator.store.database import read_only

if TYPE_CHECKING:
    from orchestrator.engine.facade import Engine

logger = logging.getLogger(__name__)

ASSERTION = "EXECUTION_ASSERTION"
_OUTCOME = {"FAIL": State.FAILED, "CANCEL": State.CANCELLED}


def assertions(flow: Flow) -> list[dict[str, Any]]:
    """The flow's EXECUTION_ASSERTION SLA entries."""
    entries = flow.sla if isinstance(flow.sla, list) else []
    return [e for e in entries if isinstance(e, dict) and e.get("type") == ASSERTION and e.get("assert")]


def violations(flow: Flow, variables: dict[str, Any]) -> list[dict[str, Any]]:
    """The assertions that render falsy against the execution's variables, in declaration order."""
    found = []
    for entry in assertions(flow):
        try:
            holds = is_true(render(str(entry["assert"]), variables))
        except ExpressionError as e:
            logger.warning("SLA %s: its assertion cannot be evaluated: %s", entry.get("id"), e.message)
            continue
        if not holds:
            found.append(entry)
    return found


def _labels(raw: Any) -> list[dict[str, str]]:
    if isinstance(raw, dict):
        return [{"key": str(k), "value": str(v)} for k, v in raw.items()]
    if isinstance(raw, list):
        return [{"key": str(i["key"]), "value": str(i.get("value"))} for i in raw if isinstance(i, dict) and "key" in i]
    return []


def on_transitions(engine: Engine, transitions: Sequence[Transition]) -> None:
    """After a commit: evaluate the assertions of each changed execution whose flow declares some."""
    changed = {t.execution_id: (t.namespace, t.flow_id) for t in transitions}
    for execution_id, (namespace, flow_id) in changed.items():
        if any(assertions(flow) for flow in flows.cached_flows(engine, namespace, flow_id)):
            _check(engine, execution_id)


def _check(engine: Engine, execution_id: str) -> None:
    with read_only(engine.sessions) as session:
        execution = store.get_execution(session, execution_id)
        if execution is None or State(execution.state).is_terminal:
            return
        row = store.latest_flow(
            session, execution.tenant, execution.namespace, execution.flow_id, revision=execution.flow_revision
        )
        if row is None:
            return
        flow = engine.flow_of(row)
        variables = base_variables(execution, flow, store.task_runs_for_variables(session, execution_id))
        current = {(label["key"], label["value"]) for label in execution.labels}
    found = violations(flow, variables)
    if not found:
        return
    first = found[0]
    for other in found[1:]:
        logger.warning("SLA %s violated on %s (only the first violation acts)", other.get("id"), execution_id)
    reason = f"assertion is false: {first['assert']}."
    labels = _labels(first.get("labels"))
    if labels and not {(label["key"], label["value"]) for label in labels} <= current:
        engine.set_labels(execution_id, labels, actor="system:sla")
    final = _OUTCOME.get(str(first.get("behavior", "FAIL")).upper())
    if final is not None:
        logger.error("Execution %s ended %s: SLA '%s' violated: %s", execution_id, final, first.get("id"), reason)
        with contextlib.suppress(Conflict):
            operations.stop(
                engine, execution_id, final, actor="system:sla", payload={"sla": first.get("id"), "reason": reason}
            )
