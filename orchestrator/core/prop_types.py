"""Property value types of task and trigger models, and the base model they share.

The models only validate: the parser keeps the raw, unrendered values. A property Kestra declares
as ``Property<T>`` (dynamic) accepts either a literal ``T`` or an expression string (``{{ ... }}``),
so ``concurrent: "{{ inputs.n }}"`` passes and ``concurrent: "abc"`` does not. Scalars are coerced
the way Jackson does (``"4"`` is an integer, ``5`` is a string).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated

from pydantic import BaseModel, ConfigDict, JsonValue, PlainValidator
from pydantic.alias_generators import to_camel

from orchestrator.core.durations import is_expression, parse_duration


def show_value(value: object) -> str:
    """A value as an error message quotes it, cut at 60 characters."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def accepting(expected: str, check: Callable[[object], bool]) -> PlainValidator:
    """A validator that takes an expression, or a literal `check` accepts, and names `expected` otherwise."""

    def validate(value: object) -> object:
        if is_expression(value) or check(value):
            return value
        raise ValueError(f"expected {expected} or an expression, got {show_value(value)}")

    return PlainValidator(validate)


def _is_scalar(value: object) -> bool:
    return isinstance(value, str | int | float | bool)


def _is_int(value: object) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, str) and value.strip().lstrip("+-").isdigit()


def _is_int_at_least(minimum: int) -> Callable[[object], bool]:
    return lambda value: _is_int(value) and int(str(value).strip()) >= minimum


def _is_number(value: object) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return True
    if not isinstance(value, str):
        return False
    try:
        float(value)
    except ValueError:
        return False
    return True


def _is_bool(value: object) -> bool:
    return isinstance(value, bool) or (isinstance(value, str) and value.lower() in ("true", "false"))


def _is_duration(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        parse_duration(value)
    except ValueError:
        return False
    return True


def _is_json_list(value: object) -> bool:
    try:
        return isinstance(value, str) and isinstance(json.loads(value), list)
    except ValueError:
        return False


def one_of(*choices: str) -> Callable[[object], bool]:
    """A check that accepts exactly one of `choices`."""
    return lambda value: isinstance(value, str) and value in choices


def _list_of(check: Callable[[object], bool]) -> Callable[[object], bool]:
    return lambda value: isinstance(value, list) and all(is_expression(v) or check(v) for v in value)


Text = Annotated[JsonValue, accepting("text", _is_scalar)]
TextOrList = Annotated[
    JsonValue, accepting("text or a list of texts", lambda v: _is_scalar(v) or _list_of(_is_scalar)(v))
]
TextList = Annotated[JsonValue, accepting("a list of texts", _list_of(_is_scalar))]
Int = Annotated[JsonValue, accepting("an integer", _is_int)]
#: Kestra's @PositiveOrZero and @Positive integers (FlowableConcurrencyValidationTest), worded as its messages.
NonNegativeInt = Annotated[JsonValue, accepting("an integer greater than or equal to 0", _is_int_at_least(0))]
PositiveInt = Annotated[JsonValue, accepting("an integer greater than 0", _is_int_at_least(1))]
Number = Annotated[JsonValue, accepting("a number", _is_number)]
Bool = Annotated[JsonValue, accepting("true or false", _is_bool)]
Duration = Annotated[JsonValue, accepting("an ISO-8601 duration (e.g. PT5M)", _is_duration)]
MapValue = Annotated[JsonValue, accepting("a mapping", lambda v: isinstance(v, dict))]
ListValue = Annotated[JsonValue, accepting("a list", lambda v: isinstance(v, list))]
MapOrList = Annotated[JsonValue, accepting("a mapping or a list", lambda v: isinstance(v, dict | list))]
ListOrText = Annotated[
    JsonValue, accepting("a list or a JSON array text", lambda v: isinstance(v, list) or _is_json_list(v))
]
Json = JsonValue
LogLevel = Annotated[JsonValue, accepting("a log level", one_of("ERROR", "WARN", "INFO", "DEBUG", "TRACE"))]
HttpMethod = Annotated[
    JsonValue,
    accepting("an HTTP method", one_of("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE")),
]


class Properties(BaseModel):
    """Base of every property model: camelCase YAML names, unknown properties refused."""

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=False)


class NoProperties(Properties):
    """A type with nothing beyond the common task properties and its child task lists."""
