"""Flow triggers' decisions: does an ended execution start a flow, and with which `trigger` variables.

Conditions follow Kestra's: `ExecutionStatus` (in / notIn), `ExecutionFlow` (namespace + flowId),
`ExecutionNamespace` (EQUALS, PREFIX or SUFFIX; legacy `prefix: true`), `ExecutionLabels`, `ExecutionOutputs`
(an expression over `trigger.outputs`), plus the
trigger's own `states` and `preconditions` (`flows` and `where`). With several preconditions, an execution
meeting one of them only counts towards the trigger's time window (`window_at`, `window_complete`); the
window's state lives in the database (orchestrator.store.flow_windows). All must hold; a condition type this
module does not know never holds, so an unsupported flow is not started by surprise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any

from orchestrator.core import regex
from orchestrator.core.durations import parse_duration
from orchestrator.core.errors import ExpressionError
from orchestrator.core.expressions import is_true, render
from orchestrator.core.flow import TriggerSpec
from orchestrator.core.schedule_conditions import expression_holds
from orchestrator.core.states import State

__all__ = [
    "EndedExecution",
    "Window",
    "flow_trigger_matches",
    "flow_trigger_variables",
    "is_windowed",
    "listened_states",
    "precondition_ids",
    "preconditions_matched",
    "regex_problems",
    "upstream_variables",
    "window_at",
    "window_complete",
    "window_spec",
]

#: Kestra's default `states` of a `preconditions.flows` / `dependsOn` entry: every terminal state.
_DEFAULT_STATES = frozenset(str(s) for s in State if s.is_terminal)
#: Kestra's default `states` of a Flow trigger itself: the terminal states and PAUSED (kestra-io/kestra#8620).
_DEFAULT_TRIGGER_STATES = _DEFAULT_STATES | {str(State.PAUSED)}


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
    #: the states of every attempt of the task runs that were attempted more than once (HasRetryAttempt)
    retried_attempts: tuple[str, ...] = ()
    #: (namespace, id) of the flow whose trigger is evaluated: Kestra's FlowCondition and
    #: FlowNamespaceCondition look at that flow, not at the execution that ended
    triggered_flow: tuple[str, str] | None = None


def listened_states(trigger: TriggerSpec) -> frozenset[str]:
    """The execution states a Flow trigger is evaluated on: its `states`, else every terminal state and PAUSED."""
    return _names(trigger.properties.get("states")) or _DEFAULT_TRIGGER_STATES


def flow_trigger_matches(trigger: TriggerSpec, ended: EndedExecution) -> bool:
    """Whether `trigger` (a Flow trigger) starts its flow for `ended`."""
    props = trigger.properties
    if ended.state not in listened_states(trigger):
        return False
    preconditions = props.get("preconditions")
    if isinstance(preconditions, dict) and not _preconditions_hold(preconditions, ended):
        return False
    conditions = props.get("conditions") or []
    if not (
        isinstance(conditions, list) and all(isinstance(c, dict) and _condition_holds(c, ended) for c in conditions)
    ):
        return False
    return _when_holds(props.get("when"), ended)


def _when_holds(expression: Any, ended: EndedExecution) -> bool:
    """Kestra 2's `when` on a Flow trigger or a `dependsOn` entry: an expression over the upstream execution.

    It sees `namespace`, `flowId`, `state`, `labels`, `outputs` and `hasRetryAttempt` of that execution, its `flow` and
    `execution` (Kestra's examples write `flow.namespace`), and `trigger.*` as in 1.x expressions; a
    rendering error means the trigger does not fire.
    """
    if expression is None:
        return True
    try:
        return is_true(render(str(expression), upstream_variables(ended)))
    except ExpressionError:
        return False


def upstream_variables(ended: EndedExecution) -> dict[str, Any]:
    """What a Flow trigger's expressions see of the upstream execution (`when`, an Expression condition, a
    `where` EXPRESSION filter): Kestra renders them in a run context of that execution, so its `labels`,
    `outputs` and `execution` are there, beside `trigger.*` as in 1.x expressions."""
    return {
        "namespace": ended.namespace,
        "flowId": ended.flow_id,
        "state": ended.state,
        "labels": dict(ended.labels),
        "outputs": dict(ended.outputs),
        "flow": {"id": ended.flow_id, "namespace": ended.namespace, "revision": ended.flow_revision},
        "execution": {"id": ended.id, "state": ended.state},
        "hasRetryAttempt": bool(ended.retried_attempts),
        "trigger": flow_trigger_variables(ended),
    }


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


def _condition_variables(ended: EndedExecution) -> dict[str, Any]:
    """An Expression condition's or a `where` EXPRESSION filter's variables: Kestra renders them in the run
    context of the listening flow (`flow`) over the upstream execution (`execution`, `labels`, `outputs`)."""
    variables = upstream_variables(ended)
    if ended.triggered_flow is not None:
        variables["flow"] = {"namespace": ended.triggered_flow[0], "id": ended.triggered_flow[1]}
    return variables


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
    if kind == "HasRetryAttempt":
        accepted, refused = _names(condition.get("in")), _names(condition.get("notIn")) or frozenset()
        return any((accepted is None or s in accepted) and s not in refused for s in ended.retried_attempts)
    if kind in ("Flow", "FlowNamespace"):
        return ended.triggered_flow is not None and _flow_condition(kind, condition, *ended.triggered_flow)
    if kind in ("Expression", "Variable"):
        try:
            return expression_holds(condition.get("expression"), _condition_variables(ended))
        except ExpressionError:
            return False
    if kind in ("Not", "Or"):
        nested = [c for c in condition.get("conditions") or [] if isinstance(c, Mapping)]
        met = [_condition_holds(c, ended) for c in nested]
        return not any(met) if kind == "Not" else any(met)
    if kind == "Multiple":
        # Kestra's legacy MultipleCondition: meeting one of its conditions counts towards its window.
        return bool(preconditions_matched(_legacy_window(condition), ended))
    return False


def _flow_condition(kind: str, condition: Mapping[str, Any], namespace: str, flow_id: str) -> bool:
    """Kestra's FlowCondition (namespace and flowId) and FlowNamespaceCondition (`prefix`: startsWith)."""
    wanted = str(condition.get("namespace"))
    if kind == "Flow":
        return namespace == wanted and flow_id == condition.get("flowId")
    prefix = str(condition.get("prefix", False)).lower() == "true"
    return namespace.startswith(wanted) if prefix else namespace == wanted


def _outputs_match(expression: Any, ended: EndedExecution) -> bool:
    """Kestra's ExecutionOutputs: an expression over `trigger.outputs`; false when the execution has none."""
    if not ended.outputs or not isinstance(expression, str):
        return False
    try:
        return is_true(render(expression, {"trigger": flow_trigger_variables(ended)}))
    except ExpressionError:
        return False


def _preconditions_hold(preconditions: Mapping[str, Any], ended: EndedExecution) -> bool:
    """One condition: this execution must meet it. Several: it must meet one, and the window decides."""
    conditions = precondition_ids(preconditions)
    matched = preconditions_matched(preconditions, ended)
    if len(conditions) > 1 or _min_satisfied(preconditions) < len(conditions):
        return bool(matched)
    return matched == conditions


def _min_satisfied(preconditions: Mapping[str, Any]) -> int:
    """How many preconditions a window needs met: all of them, except Kestra 2's `mode: ANY` / `AT_LEAST`."""
    needed = len(precondition_ids(preconditions))
    try:
        return min(needed, int(preconditions.get("minSatisfied", needed)))
    except (TypeError, ValueError):
        return needed


def is_windowed(trigger: TriggerSpec) -> bool:
    """Whether a Flow trigger waits for several preconditions within a time window (state across executions)."""
    return window_spec(trigger) is not None


def window_spec(trigger: TriggerSpec) -> Mapping[str, Any] | None:
    """The preconditions a windowed trigger waits for: its `preconditions` when there are several, or a
    legacy MultipleCondition among its `conditions` (in the same shape); None for an immediate trigger."""
    preconditions = trigger.properties.get("preconditions")
    if isinstance(preconditions, dict) and len(precondition_ids(preconditions)) > 1:
        return preconditions
    conditions = trigger.properties.get("conditions")
    for condition in conditions if isinstance(conditions, list) else []:
        if isinstance(condition, dict) and str(condition.get("type", "")).endswith("MultipleCondition"):
            return _legacy_window(condition)
    return None


def _legacy_window(condition: Mapping[str, Any]) -> dict[str, Any]:
    """A MultipleCondition as preconditions: its named `conditions`, its window (`window`/`windowAdvance`,
    or the newer `timeWindow`/`sla` mapping) and `resetOnSuccess`."""
    window = condition.get("timeWindow") or condition.get("sla")
    if not isinstance(window, dict):
        window = {
            "type": "DURATION_WINDOW",
            "window": condition.get("window", "P1D"),
            "windowAdvance": condition.get("windowAdvance", "PT0S"),
        }
    conditions = condition.get("conditions")
    return {
        "conditions": conditions if isinstance(conditions, dict) else {},
        "timeWindow": window,
        "resetOnSuccess": condition.get("resetOnSuccess", True),
    }


def precondition_ids(preconditions: Mapping[str, Any]) -> frozenset[str]:
    """The conditions a window must see met: one per `flows` entry, `where` entry or named condition."""
    flows = preconditions.get("flows") or []
    where = preconditions.get("where") or []
    named = preconditions.get("conditions") or {}
    ids = [f"flow:{_flow_id(entry, i)}" for i, entry in enumerate(flows if isinstance(flows, list) else [])]
    ids += [
        f"where:{w.get('id', i)}" for i, w in enumerate(where if isinstance(where, list) else []) if isinstance(w, dict)
    ]
    ids += [f"condition:{key}" for key in (named if isinstance(named, dict) else {})]
    return frozenset(ids)


def _flow_id(entry: Any, position: int) -> str:
    """A `flows` entry's condition id: its content hash for a Kestra 2 `dependsOn` entry, else its position."""
    condition_id = entry.get("conditionId") if isinstance(entry, dict) else None
    return str(condition_id) if condition_id else str(position)


def preconditions_matched(preconditions: Mapping[str, Any], ended: EndedExecution) -> frozenset[str]:
    """Which of the preconditions this ended execution meets."""
    flows = preconditions.get("flows") or []
    where = preconditions.get("where") or []
    matched = {
        f"flow:{_flow_id(entry, i)}"
        for i, entry in enumerate(flows if isinstance(flows, list) else [])
        if _flow_entry(entry, ended)
    }
    for i, entry in enumerate(where if isinstance(where, list) else []):
        if isinstance(entry, dict) and _where_entry(entry, ended):
            matched.add(f"where:{entry.get('id', i)}")
    named = preconditions.get("conditions") or {}
    for key, condition in named.items() if isinstance(named, dict) else ():
        if isinstance(condition, dict) and _condition_holds(condition, ended):
            matched.add(f"condition:{key}")
    return frozenset(matched)


def _flow_entry(entry: Any, ended: EndedExecution) -> bool:
    if not isinstance(entry, dict):
        return False
    if entry.get("namespace") not in (None, ended.namespace) or entry.get("flowId") not in (None, ended.flow_id):
        return False
    if entry.get("labels") is not None and not _labels_match(entry.get("labels"), ended.labels):
        return False
    return ended.state in (_names(entry.get("states")) or _DEFAULT_STATES) and _when_holds(entry.get("when"), ended)


def _where_entry(entry: Mapping[str, Any], ended: EndedExecution) -> bool:
    """Kestra's `where`: filters on FLOW_ID, NAMESPACE, STATE or EXPRESSION, joined by `operand` (AND/OR)."""
    filters = [f for f in entry.get("filters") or [] if isinstance(f, dict)]
    results = [_filter_holds(f, ended) for f in filters]
    if not results:
        return False
    return any(results) if str(entry.get("operand", "AND")).upper() == "OR" else all(results)


def _filter_holds(spec: Mapping[str, Any], ended: EndedExecution) -> bool:
    field_name = str(spec.get("field", "")).upper()
    kind = str(spec.get("type", "EQUAL_TO")).upper()
    if field_name == "EXPRESSION":
        try:
            value = is_true(render(str(spec.get("value", "")), _condition_variables(ended)))
        except ExpressionError:
            return False
        return value if kind != "IS_FALSE" else not value
    actual = {"FLOW_ID": ended.flow_id, "NAMESPACE": ended.namespace, "STATE": ended.state}.get(field_name)
    if actual is None:
        return False
    wanted = spec.get("value")
    values = [str(v) for v in spec.get("values") or []]
    checks = {
        "EQUAL_TO": lambda: actual == str(wanted),
        "NOT_EQUAL_TO": lambda: actual != str(wanted),
        "IN": lambda: actual in values,
        "NOT_IN": lambda: actual not in values,
        "STARTS_WITH": lambda: actual.startswith(str(wanted)),
        "ENDS_WITH": lambda: actual.endswith(str(wanted)),
        "CONTAINS": lambda: str(wanted) in actual,
        "REGEX": lambda: _regex_holds(str(wanted), actual),
        "PREFIX": lambda: actual == str(wanted) or actual.startswith(str(wanted).rstrip(".") + "."),
    }
    check = checks.get(kind)
    return bool(check()) if check is not None else False


def regex_problems(value: Any, path: str) -> list[tuple[str, str]]:
    """(path, message) for each REGEX filter under `value` (a trigger's properties) that RE2 cannot run.

    For deploy: the same patterns `_regex_holds` would quietly never match at run time.
    """
    problems: list[tuple[str, str]] = []
    if isinstance(value, Mapping):
        if str(value.get("type", "")).upper() == "REGEX" and isinstance(value.get("value"), str):
            try:
                regex.compile_pattern(value["value"])
            except regex.RegexInvalid as e:
                problems.append((f"{path}.value", str(e)))
        for key, item in value.items():
            problems += regex_problems(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            problems += regex_problems(item, f"{path}[{index}]")
    return problems


def _regex_holds(pattern: str, actual: str) -> bool:
    """RE2, in linear time: the pattern is the flow author's, the text another execution's (a REDoS otherwise)."""
    try:
        return regex.fullmatch(pattern, actual)
    except regex.RegexInvalid:
        return False  # like an unknown condition: an unsupported pattern never starts a flow by surprise


@dataclass(frozen=True)
class Window:
    """Where a windowed trigger keeps the conditions met: fixed bounds, or (sliding) the last `length`."""

    start: datetime
    end: datetime
    sliding: timedelta | None = None


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def window_at(preconditions: Mapping[str, Any], now: datetime) -> Window | None:
    """The window `now` falls in (Kestra's `timeWindow`); None outside a daily window's hours."""
    spec = preconditions.get("timeWindow") or {}
    spec = spec if isinstance(spec, dict) else {}
    kind = str(spec.get("type", "DURATION_WINDOW")).upper()
    midnight = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if kind == "SLIDING_WINDOW":
        length = parse_duration(str(spec.get("window", "PT24H")))
        return Window(_EPOCH, _EPOCH, sliding=length)
    if kind == "DAILY_TIME_DEADLINE":
        deadline = midnight + _time_of_day(spec.get("deadline"))
        return Window(midnight, deadline) if now <= deadline else None
    if kind == "DAILY_TIME_WINDOW":
        start, end = midnight + _time_of_day(spec.get("startTime")), midnight + _time_of_day(spec.get("endTime"))
        return Window(start, end) if start <= now <= end else None
    length = parse_duration(str(spec.get("window", "PT24H")))
    advance = parse_duration(str(spec.get("windowAdvance", "PT0S")))
    if length <= timedelta(0):
        return None
    origin = midnight + advance
    if origin > now:
        origin -= timedelta(days=1)
    start = origin + length * ((now - origin) // length)
    return Window(start, start + length)


def window_complete(preconditions: Mapping[str, Any], window: Window, met: Mapping[str, str], now: datetime) -> bool:
    """Whether every precondition has been met within the window (`met`: condition id -> ISO time met)."""
    needed = precondition_ids(preconditions)
    if window.sliding is not None:
        oldest = now - window.sliding
        met = {k: v for k, v in met.items() if datetime.fromisoformat(v) >= oldest}
    return len(needed & met.keys()) >= _min_satisfied(preconditions)


def _time_of_day(value: Any) -> timedelta:
    """A daily time (`09:00`, `17:30:00`; Kestra's partial-time) as the offset from UTC midnight."""
    at = time.fromisoformat(str(value or "00:00"))
    return timedelta(hours=at.hour, minutes=at.minute, seconds=at.second)


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
