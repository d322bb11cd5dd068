"""Property models of Kestra 2.x constructs: the Loop task, trigger `dependsOn`/`window`/`onMiss`, flow `checks`.

Taken from Kestra's `io.kestra.plugin.core.flow.Loop` and the 2.0 migration guide
(kestra.io/docs/migration-guide/v2.0.0: foreach-loop, trigger-conditions-redesign, checks-condition-renamed-when).
Like :mod:`orchestrator.core.taskprops` the models only validate; the parser keeps the raw values.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from pydantic import ConfigDict, Field, JsonValue, PlainValidator, model_validator
from pydantic.alias_generators import to_camel

from orchestrator.core import prop_types as p
from orchestrator.core import trigger_props
from orchestrator.core.durations import is_expression
from orchestrator.core.errors import ExpressionError
from orchestrator.core.expressions import is_true, render

__all__ = [
    "CheckSpec",
    "DependsOnEntry",
    "FlowTriggerProps",
    "LoopProps",
    "OnMiss",
    "TriggerWindow",
    "failed_checks",
    "flow_trigger_problems",
    "preconditions_of",
    "when_holds",
]  # fmt: skip


def _choice(*choices: str) -> PlainValidator:
    def validate(value: object) -> object:
        if isinstance(value, str) and value in choices:
            return value
        raise ValueError(f"expected one of {', '.join(choices)}, got {value!r}")

    return PlainValidator(validate)


def _values(value: object) -> object:
    # Loop.values: a list, a map (item.key / item.value), a JSON array text, an internal-storage URI
    # (one iteration per line) or an expression giving any of these.
    if isinstance(value, list | dict) or is_expression(value) or isinstance(value, str):
        return value
    raise ValueError(f"expected a list, a mapping, a JSON array, a storage URI or an expression, got {value!r}")


class LoopProps(p.Properties):
    """`io.kestra.plugin.core.flow.Loop` (Kestra 2.0): ForEach and ForEachItem in one task."""

    values: Annotated[JsonValue, PlainValidator(_values)]
    concurrency_limit: p.Int | None = None  #: 0 (Kestra's default) runs every iteration at once
    transmit_failed: p.Bool | None = None  #: default true: a failed iteration fails the Loop
    outputs: p.ListValue | None = None  #: per-iteration outputs, each {id, type, value}
    fetch_type: Annotated[JsonValue, _choice("AUTO", "FETCH", "STORE")] | None = None
    break_when: p.Text | None = None  #: rendered after each iteration: truthy, no new iteration starts

    @model_validator(mode="after")
    def _non_negative_limit(self) -> LoopProps:
        limit = self.concurrency_limit
        if isinstance(limit, int | str) and not is_expression(limit) and int(limit) < 0:
            raise ValueError("concurrencyLimit must be 0 (no limit) or more")
        return self


class _Model(p.Properties):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=False, frozen=True)


#: Kestra 2's default `states` of a `dependsOn` entry: every terminal state, and PAUSED.
DEFAULT_DEPENDS_ON_STATES = (
    "SUCCESS", "WARNING", "FAILED", "KILLED", "CANCELLED", "RETRIED", "SKIPPED", "RESUBMITTED", "PAUSED",
)  # fmt: skip


class DependsOnEntry(_Model):
    """One upstream dependency of a Flow trigger (2.x `dependsOn`), matched exactly on namespace and flowId."""

    namespace: str | None = None
    flow_id: str | None = None
    states: list[str] | None = None
    labels: dict[str, JsonValue] | None = None
    when: p.Text | None = None


class TriggerWindow(_Model):
    """A Flow trigger's 2.x `window`: exactly one group of deadline, from/to, every(+offset) or lookback."""

    deadline: str | None = None
    from_: str | None = Field(default=None, alias="from")
    to: str | None = None
    every: p.Duration | None = None
    offset: p.Duration | None = None
    lookback: p.Duration | None = None
    fire_once: p.Bool | None = None

    @model_validator(mode="after")
    def _one_group(self) -> TriggerWindow:
        groups = {
            "deadline": self.deadline is not None,
            "from/to": self.from_ is not None or self.to is not None,
            "every": self.every is not None or self.offset is not None,
            "lookback": self.lookback is not None,
        }
        chosen = [name for name, present in groups.items() if present]
        if len(chosen) > 1:
            raise ValueError(f"a window takes one of deadline, from/to, every or lookback, not {' and '.join(chosen)}")
        if (self.from_ is None) != (self.to is None):
            raise ValueError("a daily time range window needs both 'from' and 'to'")
        if self.offset is not None and self.every is None:
            raise ValueError("'offset' needs 'every'")
        return self


class OnMiss(_Model):
    """What a Flow trigger does when its window's deadline passes unsatisfied."""

    behavior: Annotated[JsonValue, _choice("FAIL", "NONE")] | None = None
    labels: dict[str, JsonValue] | None = None


class FlowTriggerProps(trigger_props.FlowTriggerProps):
    """The Flow trigger with Kestra 2's forms beside 1.x's; the parser compiles them onto `preconditions`."""

    depends_on: list[DependsOnEntry] | None = None
    window: TriggerWindow | None = None
    mode: Annotated[JsonValue, _choice("ALL", "ANY", "AT_LEAST")] | None = None
    min_satisfied: p.Int | None = None
    on_miss: OnMiss | None = None


class CheckSpec(_Model):
    """A flow-level check: rendered before an execution is created; when false, `behavior` applies.

    `condition` is the 1.x name Kestra 2.0 keeps as a deprecated alias of `when`.
    """

    when: p.Text | None = None
    condition: p.Text | None = None
    message: p.Text
    behavior: Annotated[JsonValue, _choice("BLOCK_EXECUTION", "FAIL_EXECUTION", "CREATE_EXECUTION")] | None = None
    style: Annotated[JsonValue, _choice("ERROR", "SUCCESS", "WARNING", "INFO")] | None = None

    @model_validator(mode="after")
    def _one_expression(self) -> CheckSpec:
        if (self.when is None) == (self.condition is None):
            raise ValueError("a check needs 'when' (or its 1.x name 'condition'), and only one of them")
        return self

    @property
    def expression(self) -> str:
        """The check's expression, whichever name it was written under."""
        return str(self.when if self.when is not None else self.condition)


# -- Flow triggers: 2.x `dependsOn` + `window` compiled onto 1.x `preconditions` ------------------------

#: 2.x window groups -> the 1.x `timeWindow` the window machinery already runs.
_WINDOW_TYPES = (
    ("deadline", "DAILY_TIME_DEADLINE"),
    ("from", "DAILY_TIME_WINDOW"),
    ("every", "DURATION_WINDOW"),
    ("lookback", "SLIDING_WINDOW"),
)


def _time_window(window: dict[str, JsonValue]) -> dict[str, JsonValue]:
    for key, kind in _WINDOW_TYPES:
        if window.get(key) is None:
            continue
        if kind == "DAILY_TIME_DEADLINE":
            return {"type": kind, "deadline": window["deadline"]}
        if kind == "DAILY_TIME_WINDOW":
            return {"type": kind, "startTime": window["from"], "endTime": window.get("to")}
        if kind == "DURATION_WINDOW":
            return {"type": kind, "window": window["every"], "windowAdvance": window.get("offset") or "PT0S"}
        return {"type": kind, "window": window["lookback"]}
    return {"type": "DURATION_WINDOW", "window": "P1D", "windowAdvance": "PT0S"}


def preconditions_of(props: dict[str, JsonValue]) -> dict[str, JsonValue]:
    """The 1.x `preconditions` a (validated) 2.x Flow trigger means: one `flows` entry per `dependsOn` entry.

    Entries keep their `when`; `mode: ANY` / `AT_LEAST` become `minSatisfied` (how many entries must be met
    within the window); `window.fireOnce` is 1.x's `resetOnSuccess`.
    """
    entries = [e for e in props.get("dependsOn") or [] if isinstance(e, dict)]  # type: ignore[union-attr]
    flows = []
    for entry in entries:
        flow: dict[str, JsonValue] = {k: v for k, v in entry.items() if v is not None}
        flow.setdefault("states", list(DEFAULT_DEPENDS_ON_STATES))
        # As in Kestra 2, a dependency's condition id is a hash of its content, not its position: reordering
        # `dependsOn` in a new revision keeps what a window already counted for each dependency.
        flow["conditionId"] = _content_id(flow)
        flows.append(flow)
    raw_window = props.get("window")
    window = raw_window if isinstance(raw_window, dict) else None
    mode = str(props.get("mode") or "ALL").upper()
    needed = len(flows) if mode == "ALL" else 1 if mode == "ANY" else int(str(props.get("minSatisfied") or 1))
    return {
        "id": "dependsOn",
        "flows": flows,  # type: ignore[dict-item]
        "timeWindow": _time_window(window or {}),
        # Kestra's DependsOnMultipleCondition: without a window it resets on success, with one `fireOnce` says.
        "resetOnSuccess": window is None or str(window.get("fireOnce", False)).lower() == "true",
        "minSatisfied": needed,
    }


def _content_id(entry: Mapping[str, JsonValue]) -> str:
    canonical = json.dumps(entry, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def flow_trigger_problems(props: dict[str, JsonValue]) -> list[tuple[str, str]]:
    """Cross-field rules of a 2.x Flow trigger, as (property, message); Kestra 2 has no 1.x forms beside them."""
    problems: list[tuple[str, str]] = []
    depends_on = props.get("dependsOn")
    for legacy in ("preconditions", "conditions"):
        if depends_on is not None and props.get(legacy) is not None:
            problems.append((legacy, f"'{legacy}' (Kestra 1.x) cannot be combined with 'dependsOn' (Kestra 2.x)"))
    for key in ("window", "mode", "minSatisfied", "onMiss"):
        if props.get(key) is not None and depends_on is None:
            problems.append((key, f"'{key}' needs 'dependsOn'"))
    if isinstance(depends_on, list):
        if not depends_on:
            problems.append(("dependsOn", "must list at least one upstream flow"))
        mode = str(props.get("mode") or "ALL").upper()
        minimum = props.get("minSatisfied")
        if mode == "AT_LEAST":
            if not isinstance(minimum, int) or isinstance(minimum, bool) or not 1 <= minimum <= len(depends_on):
                problems.append(("minSatisfied", f"mode AT_LEAST needs minSatisfied between 1 and {len(depends_on)}"))
        elif minimum is not None:
            problems.append(("minSatisfied", "minSatisfied applies only to mode AT_LEAST"))
    return problems


def when_holds(expression: JsonValue, variables: Mapping[str, Any]) -> bool:
    """A trigger's Kestra 2 `when`: true when absent; false when it renders falsy or cannot be rendered."""
    if expression is None:
        return True
    try:
        return is_true(render(str(expression), variables))
    except ExpressionError:
        return False


# -- flow checks --------------------------------------------------------------------------------------

#: Kestra's `Check.resolveBehavior`: of the failed checks, the behaviour earliest in this order wins.
_BEHAVIORS = ("BLOCK_EXECUTION", "FAIL_EXECUTION", "CREATE_EXECUTION")


def failed_checks(checks: Sequence[CheckSpec], variables: Mapping[str, Any]) -> tuple[str, list[str]]:
    """The behaviour that applies and the messages of the checks whose expression is false.

    ("CREATE_EXECUTION", []) when every check holds. A check that cannot be rendered counts as failed,
    its message followed by the rendering error.
    """
    behaviors: list[str] = []
    messages: list[str] = []
    for check in checks:
        try:
            holds = is_true(render(check.expression, variables))
            problem = ""
        except ExpressionError as e:
            holds, problem = False, f" ({e.message})"
        if not holds:
            behaviors.append(str(check.behavior or "BLOCK_EXECUTION"))  # Kestra's default behaviour
            messages.append(f"{check.message}{problem}")
    if not behaviors:
        return "CREATE_EXECUTION", []
    return min(behaviors, key=_BEHAVIORS.index), messages
