"""Property models of Kestra 2.x constructs: the Loop task, trigger `dependsOn`/`window`/`onMiss`, flow `checks`.

Taken from Kestra's `io.kestra.plugin.core.flow.Loop` and the 2.0 migration guide
(kestra.io/docs/migration-guide/v2.0.0: foreach-loop, trigger-conditions-redesign, checks-condition-renamed-when).
Like :mod:`orchestrator.core.taskprops` the models only validate; the parser keeps the raw values.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, Field, JsonValue, PlainValidator, model_validator
from pydantic.alias_generators import to_camel

from orchestrator.core import taskprops as p
from orchestrator.core.durations import is_expression

__all__ = ["CheckSpec", "DependsOnEntry", "LoopProps", "OnMiss", "TriggerWindow"]


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
    break_when: p.Text | None = None

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
