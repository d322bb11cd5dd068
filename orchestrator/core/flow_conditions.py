"""Flow triggers' decisions: does an ended execution start a flow, and with which `trigger` variables.

Conditions follow Kestra's: `ExecutionStatus` (in / notIn), `ExecutionFlow` (namespace + flowId),
`ExecutionNamespace` (EQUALS, PREFIX or SUFFIX; legacy `prefix: true`), `ExecutionLabels`, `ExecutionOutputs`
(an expression over `trigger.outputs`), plus the
trigger's own `states` and a one-flow `preconditions.flows`. All must hold; a condition type this
module does not know never holds, so an unsupported flow is not started by surprise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from orchestrator.core.errors import ExpressionError
from orchestrator.core.expressions import is_true, render
from orchestrator.core.flow import TriggerSpec
from orchestrator.core.states import State

__all__ = ["EndedExecution", "flow_trigger_matches", "flow_trigger_variables"]

#: Kestra's default `states` of a Flow trigger: every terminal state.
_DEFAULT_STATES = frozenset(str(s) for s in State if s.is_terminal)


@dataclass(frozen=True)
class EndedExecution:
    """What Flow triggers may look at in an execution that just ended."""

    id: str
    namespace: str
    flow_id: str
    flow_revision: int
    state: str
    labels: Mapping[str, str] = field(default_factory=dict)
    outputs: Mapping[str, Any] = field(default_factory=dict)


def flow_trigger_matches(trigger: TriggerSpec, ended: EndedExecution) -> bool:
    """Whether `trigger` (a Flow trigger) starts its flow for `ended`."""
    props = trigger.properties
    if ended.state not in (_names(props.get("states")) or _DEFAULT_STATES):
        return False
    preconditions = props.get("preconditions")
    if isinstance(preconditions, dict) and not _preconditions_hold(preconditions, ended):
        return False
    conditions = props.get("conditions") or []
    return isinstance(conditions, list) and all(isinstance(c, dict) and _condition_holds(c, ended) for c in conditions)


def flow_trigger_variables(ended: EndedExecution) -> dict[str, Any]:
    """`trigger.*` of an execution started by a Flow trigger."""
    return {
        "executionId": ended.id,
        "namespace": ended.namespace,
        "flowId": ended.flow_id,
        "flowRevision": ended.flow_revision,
        "state": ended.state,
        "outputs": dict(ended.outputs),
        "labels": dict(ended.labels),
    }


def _condition_holds(condition: Mapping[str, Any], ended: EndedExecution) -> bool:
    kind = str(condition.get("type", "")).rsplit(".", 1)[-1].removesuffix("Condition")
    if kind == "ExecutionStatus":
        accepted = _names(condition.get("in"))
        refused = _names(condition.get("notIn")) or frozenset()
        return (accepted is None or ended.state in accepted) and ended.state not in refused
    if kind == "ExecutionFlow":
        return condition.get("namespace") == ended.namespace and condition.get("flowId") == ended.flow_id
    if kind == "ExecutionNamespace":
        return _namespace_matches(condition, ended.namespace)
    if kind == "ExecutionLabels":
        return _labels_match(condition.get("labels"), ended.labels)
    if kind == "ExecutionOutputs":
        return _outputs_match(condition.get("expression"), ended)
    return False


def _outputs_match(expression: Any, ended: EndedExecution) -> bool:
    """Kestra's ExecutionOutputs: an expression over `trigger.outputs`; false when the execution has none."""
    if not ended.outputs or not isinstance(expression, str):
        return False
    try:
        return is_true(render(expression, {"trigger": flow_trigger_variables(ended)}))
    except ExpressionError:
        return False


def _preconditions_hold(preconditions: Mapping[str, Any], ended: EndedExecution) -> bool:
    flows = preconditions.get("flows") or []
    if not isinstance(flows, list) or len(flows) > 1:
        return False  # multi-flow windows need state across executions: not supported yet
    for entry in flows:
        if not isinstance(entry, dict):
            return False
        if entry.get("namespace") not in (None, ended.namespace) or entry.get("flowId") not in (None, ended.flow_id):
            return False
        if ended.state not in (_names(entry.get("states")) or _DEFAULT_STATES):
            return False
    return True


def _namespace_matches(condition: Mapping[str, Any], namespace: str) -> bool:
    wanted = str(condition.get("namespace", ""))
    comparison = str(condition.get("comparison") or ("PREFIX" if condition.get("prefix") else "EQUALS")).upper()
    if comparison == "PREFIX":
        return namespace == wanted or namespace.startswith(wanted.rstrip(".") + ".")
    if comparison == "SUFFIX":
        return namespace.endswith(wanted)
    return namespace == wanted


def _labels_match(wanted: Any, labels: Mapping[str, str]) -> bool:
    if isinstance(wanted, dict):
        pairs = [(str(k), str(v)) for k, v in wanted.items()]
    elif isinstance(wanted, list):
        pairs = [(str(x.get("key")), str(x.get("value"))) for x in wanted if isinstance(x, dict)]
    else:
        return False
    return all(labels.get(key) == value for key, value in pairs)


def _names(value: Any) -> frozenset[str] | None:
    if value is None:
        return None
    items: Sequence[Any] = value if isinstance(value, list) else [value]
    return frozenset(str(item) for item in items)
