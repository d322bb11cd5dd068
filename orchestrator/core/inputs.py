"""Flow inputs: checking their declarations and coercing execution values to their declared types.

Coercion follows Kestra's API input parsing (``FlowInputOutput``): values arrive as strings from
multipart forms or as JSON values, are converted to the declared type, checked against the
declaration's constraints, and nested by their dotted ids (``a.b`` becomes ``{"a": {"b": ...}}``).
Where Kestra is lax in a way that hides mistakes, Chorus is strict and says so: BOOLEAN takes only
``true``/``false`` (Kestra reads anything else as false), URI accepts any ``scheme://...`` (Kestra
requires a dotted host name).
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from pydantic import JsonValue

from orchestrator.core import json_text, regex
from orchestrator.core.durations import format_duration, is_expression, parse_duration
from orchestrator.core.errors import NOT_SHOWN, InputInvalid
from orchestrator.core.flow import Flow, Input, InputType
from orchestrator.core.json_text import JsonTooDeep
from orchestrator.core.yamldoc import load_yaml_value

__all__ = ["INPUT_ID", "Problem", "coerce_declared", "coerce_inputs", "coerce_value", "read_declaration"]

INPUT_ID = re.compile(r"[a-zA-Z0-9][.a-zA-Z0-9_-]*")
_INT_RANGE = (-(2**31), 2**31 - 1)  # java.lang.Integer, what Kestra parses INT into
_COMMON = frozenset({"id", "name", "type", "description", "displayName", "required", "defaults", "dependsOn"})
_SPECIFIC: dict[InputType, frozenset[str]] = {
    InputType.STRING: frozenset({"validator"}),
    InputType.SECRET: frozenset({"validator"}),
    InputType.INT: frozenset({"min", "max"}),
    InputType.FLOAT: frozenset({"min", "max"}),
    InputType.DURATION: frozenset({"min", "max"}),
    InputType.DATE: frozenset({"after", "before"}),
    InputType.DATETIME: frozenset({"after", "before"}),
    InputType.TIME: frozenset({"after", "before"}),
    InputType.ENUM: frozenset({"values"}),
    InputType.SELECT: frozenset({"values", "expression", "allowCustomValue", "isRadio", "autoSelectFirst"}),
    InputType.MULTISELECT: frozenset(
        {"values", "options", "expression", "allowCustomValue", "itemType", "autoSelectFirst"}
    ),
    InputType.ARRAY: frozenset({"itemType"}),
    InputType.FILE: frozenset({"extension", "allowedFileExtensions"}),
}


# -- coercion of one value -----------------------------------------------------------------------


def _show(value: object) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _text(value: JsonValue) -> JsonValue:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise ValueError(f"expected text, got {_show(value)}")


def _int(value: JsonValue) -> JsonValue:
    result: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        result = value
    elif (isinstance(value, float) and value.is_integer()) or (
        isinstance(value, str) and re.fullmatch(r"[-+]?\d+", value)
    ):
        result = int(value)
    if result is None:
        raise ValueError(f"expected an integer, got {_show(value)}")
    if not _INT_RANGE[0] <= result <= _INT_RANGE[1]:
        raise ValueError(f"{result} is out of the INT range")
    return result


def _float(value: JsonValue) -> JsonValue:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            result = float(value)
        except ValueError:
            pass
        else:
            if result not in (float("inf"), float("-inf")) and result == result:
                return result
    raise ValueError(f"expected a number, got {_show(value)}")


def _bool(value: JsonValue) -> JsonValue:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ValueError(f"expected true or false, got {_show(value)}")


def _parse_datetime(value: JsonValue) -> datetime:
    try:
        parsed = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise ValueError(
            f"expected an ISO-8601 date-time with a time zone (e.g. 2024-01-31T09:30:00Z), got {_show(value)}"
        )
    return parsed.astimezone(UTC)


def _datetime(value: JsonValue) -> JsonValue:
    # Written like java.time.Instant.toString: UTC, "Z", fraction in groups of three digits.
    parsed = _parse_datetime(value)
    text = parsed.strftime("%Y-%m-%dT%H:%M:%S")
    if parsed.microsecond:
        text += f".{parsed.microsecond // 1000:03d}" if parsed.microsecond % 1000 == 0 else f".{parsed.microsecond:06d}"
    return text + "Z"


def _parse_date(value: JsonValue) -> date:
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError(f"expected an ISO-8601 date (e.g. 2024-01-31), got {_show(value)}")


def _parse_time(value: JsonValue) -> time:
    try:
        parsed = time.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is not None:
        raise ValueError(f"expected an ISO-8601 local time (e.g. 09:30:00), got {_show(value)}")
    return parsed


def _parse_duration(value: JsonValue) -> timedelta:
    if not isinstance(value, str):
        raise ValueError(f"expected an ISO-8601 duration (e.g. PT5M), got {_show(value)}")
    return parse_duration(value)


def _json(value: JsonValue) -> JsonValue:
    if not isinstance(value, str):
        return value
    try:
        parsed: JsonValue = json_text.loads(value, parse_constant=_no_constant)
    except JsonTooDeep as e:
        raise ValueError("expected a JSON document: it nests too deeply to read") from e
    except ValueError as e:
        raise ValueError(f"expected a JSON document: {e}") from e
    return parsed


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _yaml(value: JsonValue) -> JsonValue:
    if not isinstance(value, str):
        return value
    return load_yaml_value(value)


def _list(value: JsonValue) -> list[JsonValue]:
    parsed = _json(value)
    if not isinstance(parsed, list):
        raise ValueError(f"expected a list (a JSON array), got {_show(value)}")
    return parsed


def _file(value: JsonValue) -> JsonValue:
    # Files reach the core as storage URIs (kestra://...); the API stores uploads before coercion.
    if isinstance(value, str) and re.match(r"[a-zA-Z][a-zA-Z0-9+.-]+:", value):
        return value
    raise ValueError(f"expected a file URI (e.g. kestra:///ns/flow/file.txt), got {_show(value)}")


def _uri(value: JsonValue) -> JsonValue:
    if isinstance(value, str) and re.fullmatch(r"[a-zA-Z][a-zA-Z0-9+.-]*://\S+", value):
        return value
    raise ValueError(f"expected a URI (e.g. https://example.com/path), got {_show(value)}")


def _email(value: JsonValue) -> JsonValue:
    if isinstance(value, str) and re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value):
        return value
    raise ValueError(f"expected an e-mail address, got {_show(value)}")


_COERCE: dict[InputType, Callable[[JsonValue], JsonValue]] = {
    InputType.STRING: _text,
    InputType.SECRET: _text,
    InputType.ENUM: _text,
    InputType.SELECT: _text,
    InputType.INT: _int,
    InputType.FLOAT: _float,
    InputType.BOOLEAN: _bool,
    InputType.BOOL: _bool,
    InputType.DATETIME: _datetime,
    InputType.DATE: lambda v: _parse_date(v).isoformat(),
    InputType.TIME: lambda v: _parse_time(v).isoformat(),
    InputType.DURATION: lambda v: format_duration(_parse_duration(v)),
    InputType.JSON: _json,
    InputType.YAML: _yaml,
    InputType.FILE: _file,
    InputType.URI: _uri,
    InputType.EMAIL: _email,
}

# For range checks: a value of the type as something comparable.
_ORDER: dict[InputType, Callable[[JsonValue], Any]] = {
    InputType.INT: _int,
    InputType.FLOAT: _float,
    InputType.DURATION: _parse_duration,
    InputType.DATE: _parse_date,
    InputType.DATETIME: _parse_datetime,
    InputType.TIME: _parse_time,
}


def _items(spec: Input, value: JsonValue) -> JsonValue:
    item = _COERCE[spec.item_type or InputType.STRING]
    try:
        return [item(v) for v in _list(value)]
    except ValueError as e:
        raise ValueError(f"an item is not a valid {spec.item_type or InputType.STRING}: {e}") from e


def coerce_value(spec: Input, value: JsonValue) -> JsonValue:
    """Convert one value to the input's type and check its constraints; raise ValueError."""
    listed = spec.type in (InputType.ARRAY, InputType.MULTISELECT)
    typed = _items(spec, value) if listed else _COERCE[spec.type](value)
    _check(spec, typed)
    return typed


def _check(spec: Input, typed: JsonValue) -> None:
    if spec.validator is not None and isinstance(typed, str) and not regex.fullmatch(spec.validator, typed):
        raise ValueError(f"it must match the pattern `{spec.validator}`")
    order = _ORDER.get(spec.type)
    if order is not None:
        low, high = (spec.min, spec.max) if spec.type in _RANGED else (spec.after, spec.before)
        # Kestra's words (its bounds are inclusive all the same).
        if low is not None and order(typed) < order(low):
            raise ValueError(f"it must be {'more than' if spec.type in _RANGED else 'after'} `{low}`")
        if high is not None and order(typed) > order(high):
            raise ValueError(f"it must be {'less than' if spec.type in _RANGED else 'before'} `{high}`")
    if spec.values is not None and not spec.allow_custom_value:
        chosen = typed if isinstance(typed, list) else [typed]
        for item in chosen:
            if item not in spec.values:
                raise ValueError(f"{_show(item)} is not one of {list(spec.values)}")


_RANGED = (InputType.INT, InputType.FLOAT, InputType.DURATION)


def coerce_inputs(flow: Flow, raw: Mapping[str, Any], *, require: bool = True) -> dict[str, JsonValue]:
    """Type, check and complete execution inputs against the flow's declared inputs (see coerce_declared)."""
    return coerce_declared(flow.inputs, raw, require=require)


def coerce_declared(declared: Sequence[Input], raw: Mapping[str, Any], *, require: bool = True) -> dict[str, JsonValue]:
    """Type, check and complete values against input declarations (flow inputs, Pause `onResume`).

    Inputs are taken in declaration order and the first bad one raises InputInvalid. Missing
    inputs take their declared defaults; a default that is an expression is returned unrendered,
    for the run to render. Optional inputs without value come back as None, undeclared inputs are
    ignored, as Kestra does. Dotted ids are nested. With `require=False` a missing required input is
    None too (an execution started with no inputs at all, which Kestra's engine does not validate).
    """
    typed: dict[str, JsonValue] = {}
    for spec in declared:
        value = raw.get(spec.id)
        if value is None and spec.defaults is not None:
            value = spec.defaults
            if is_expression(value):
                typed[spec.id] = value
                continue
        if value is None:
            if spec.required and require:
                raise InputInvalid(spec.id, "missing required input", received=None)
            typed[spec.id] = None
            continue
        try:
            typed[spec.id] = coerce_value(spec, value)
        except ValueError as e:
            # A broken constraint says what was received, as Kestra does; a type error already names it.
            received = value if str(e).startswith("it must") else NOT_SHOWN
            raise InputInvalid(spec.id, str(e), received=received) from e
    return _nest(typed)


def _nest(flat: Mapping[str, JsonValue]) -> dict[str, JsonValue]:
    nested: dict[str, JsonValue] = {}
    for key, value in flat.items():
        *parents, leaf = key.split(".")
        level = nested
        for part in parents:
            child = level.setdefault(part, {})
            if not isinstance(child, dict):  # "a" and "a.b" both declared: the parser refuses this
                break
            level = child
        else:
            level[leaf] = value
    return nested


# -- declarations --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One problem in an input declaration, located by the key inside the input's mapping."""

    key: str | None  #: None for the declaration as a whole
    message: str
    suggestion: str | None = None
    at_key: bool = False  #: point at the key itself rather than its value


def read_declaration(raw: Mapping[str, JsonValue], line: int, column: int) -> tuple[Input | None, list[Problem]]:
    """Check one input declaration; return the Input (None if id or type is unusable) and problems."""
    problems: list[Problem] = []
    input_id, input_type = _identity(raw, problems)
    allowed = _COMMON | (
        _SPECIFIC.get(input_type, frozenset()) if input_type else frozenset().union(*_SPECIFIC.values())
    )
    for key in raw:
        if key not in allowed:
            what = f"{_a(input_type)} {input_type} input" if input_type else "an input"
            hint = difflib.get_close_matches(key, sorted(allowed), n=1)
            problems.append(Problem(key, f"unknown property '{key}' for {what}", hint[0] if hint else None, True))
    if input_id is None or input_type is None:
        return None, problems
    fields = _fields(raw, input_type, problems)
    spec = Input(id=input_id, type=input_type, line=line, column=column, **fields)
    _check_bounds(spec, problems)
    defaults = raw.get("defaults")
    if defaults is not None and not is_expression(defaults):
        try:
            coerce_value(spec, defaults)
        except ValueError as e:
            problems.append(Problem("defaults", f"invalid default: {e}"))
    return spec, problems


def _identity(raw: Mapping[str, JsonValue], problems: list[Problem]) -> tuple[str | None, InputType | None]:
    input_id = raw.get("id", raw.get("name"))
    if input_id is None:
        problems.append(Problem("id", "missing required property 'id'"))
    elif not isinstance(input_id, str) or not INPUT_ID.fullmatch(input_id):
        problems.append(Problem("id" if "id" in raw else "name", f"invalid input id {_show(input_id)}: {_ID_RULE}"))
        input_id = None
    raw_type = raw.get("type")
    if raw_type is None:
        problems.append(Problem("type", "missing required property 'type'"))
        return (input_id if isinstance(input_id, str) else None), None
    if isinstance(raw_type, str) and raw_type in InputType.__members__:
        return (input_id if isinstance(input_id, str) else None), InputType(raw_type)
    names = list(InputType.__members__)
    hint = [raw_type.upper()] if isinstance(raw_type, str) and raw_type.upper() in names else None
    hint = hint or difflib.get_close_matches(str(raw_type).upper(), names, n=1)
    problems.append(Problem("type", f"unknown input type {_show(raw_type)}", hint[0] if hint else None))
    return (input_id if isinstance(input_id, str) else None), None


_ID_RULE = "it must start with a letter or digit and contain only letters, digits, '.', '_' and '-'"


def _fields(raw: Mapping[str, JsonValue], input_type: InputType, problems: list[Problem]) -> dict[str, Any]:
    fields: dict[str, Any] = {"defaults": raw.get("defaults")}
    for key, attr in (("required", "required"), ("allowCustomValue", "allow_custom_value")):
        if key in raw:
            if isinstance(raw[key], bool):
                fields[attr] = raw[key]
            else:
                problems.append(Problem(key, f"expected true or false, got {_show(raw[key])}"))
    for key, attr in (("description", "description"), ("displayName", "display_name"), ("expression", "expression")):
        if key in raw:
            if isinstance(raw[key], str):
                fields[attr] = raw[key]
            else:
                problems.append(Problem(key, f"expected text, got {_show(raw[key])}"))
    validator = raw.get("validator")
    if validator is not None:
        try:
            regex.compile_pattern(str(validator))
            fields["validator"] = str(validator)
        except regex.RegexInvalid as e:
            problems.append(Problem("validator", str(e)))
    for key in ("min", "max", "after", "before"):
        if raw.get(key) is not None:
            try:
                _ORDER[input_type](raw[key])
                fields[key] = raw[key]
            except ValueError as e:
                problems.append(Problem(key, f"invalid {key}: {e}"))
    fields.update(_choices(raw, input_type, problems))
    fields.update(_depends_on(raw.get("dependsOn"), problems))
    extension = raw.get("extension", raw.get("allowedFileExtensions"))
    if extension is not None:
        fields["extension"] = extension if isinstance(extension, str) else ",".join(map(str, _as_list(extension)))
    return fields


def _a(word: str) -> str:
    return "an" if word[:1] in "AEIOU" else "a"


def _as_list(value: JsonValue) -> list[JsonValue]:
    return value if isinstance(value, list) else [value]


def _choices(raw: Mapping[str, JsonValue], input_type: InputType, problems: list[Problem]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if "values" in raw and "options" in raw:
        problems.append(Problem("options", "use either 'values' or the deprecated 'options', not both"))
    key = "options" if "options" in raw else "values"
    values = raw.get(key)
    if values is not None:
        if isinstance(values, list) and all(isinstance(v, str | int | float | bool) for v in values):
            fields["values"] = tuple(str(_text(v)) for v in values)
        else:
            problems.append(Problem(key, f"expected a list of texts, got {_show(values)}"))
    elif input_type in (InputType.ENUM, InputType.SELECT, InputType.MULTISELECT) and "expression" not in raw:
        problems.append(Problem("values", f"{_a(input_type)} {input_type} input needs 'values'"))
    item_type = raw.get("itemType")
    if item_type is not None:
        if item_type in InputType.__members__ and item_type not in ("ARRAY", "MULTISELECT"):
            fields["item_type"] = InputType(str(item_type))
        else:
            problems.append(Problem("itemType", f"invalid item type {_show(item_type)}"))
    elif input_type is InputType.ARRAY:
        problems.append(Problem("itemType", "an ARRAY input needs 'itemType'"))
    return fields


def _depends_on(value: JsonValue, problems: list[Problem]) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not set(value) <= {"inputs", "condition"}:
        problems.append(Problem("dependsOn", "expected a mapping with 'inputs' (a list of input ids) and 'condition'"))
        return {}
    inputs = value.get("inputs") or []
    condition = value.get("condition")
    if not isinstance(inputs, list) or not all(isinstance(i, str) for i in inputs):
        problems.append(Problem("dependsOn.inputs", "expected a list of input ids"))
        return {}
    if condition is not None and not isinstance(condition, str):
        problems.append(Problem("dependsOn.condition", "expected an expression"))
        return {}
    return {"depends_on": tuple(str(i) for i in inputs), "depends_on_condition": condition}


def _check_bounds(spec: Input, problems: list[Problem]) -> None:
    order = _ORDER.get(spec.type)
    for low_key, high_key in (("min", "max"), ("after", "before")):
        low, high = getattr(spec, low_key), getattr(spec, high_key)
        if order is not None and low is not None and high is not None and order(low) > order(high):
            problems.append(Problem(low_key, f"{low_key} ({low}) is greater than {high_key} ({high})"))
