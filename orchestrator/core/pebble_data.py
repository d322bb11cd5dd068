"""Kestra's number, JSON and YAML filters and functions: number, numberFormat, toJson, jq, yaml, fromJson."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

import yaml

from orchestrator.core import jq_sandbox
from orchestrator.core.errors import ExpressionError
from orchestrator.core.pebble_runtime import CURRENT, register
from orchestrator.core.pebble_values import LazyRange, format_value, to_json, to_plain

FILTERS: dict[str, Callable[..., Any]] = {}
FUNCTIONS: dict[str, Callable[..., Any]] = {}

_JAVA_CLASS_NAMES = {
    bool: "java.lang.Boolean",
    int: "java.lang.Long",
    float: "java.lang.Double",
    str: "java.lang.String",
}


@register(FILTERS, "className")
def _class_name(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, Mapping):
        return "java.util.LinkedHashMap"
    if isinstance(value, list | tuple | LazyRange):
        return "java.util.ArrayList"
    if isinstance(value, str):
        return "java.lang.String"  # a flow variable is a str subclass (authored.Authored)
    return _JAVA_CLASS_NAMES.get(type(value), type(value).__name__)


@register(FILTERS, "jq")
def _jq(value: Any, expression: str) -> list[Any] | None:
    if value is None:
        return None
    try:
        data = json.loads(value) if isinstance(value, str) else to_plain(value)
    except ValueError as e:
        raise ExpressionError(f"jq: cannot apply {expression!r}: {e}") from e
    state = CURRENT.get()
    # Called outside a render (directly, in tests): RenderLimits' defaults.
    timeout_s = state.deadline - time.monotonic() if state is not None else 2.0
    max_chars = state.max_output_chars if state is not None else 1_000_000
    # jq runs in a helper process the deadline can kill (jq_sandbox); starting one is not the template's time.
    run = jq_sandbox.run(str(expression), data, timeout_s=max(timeout_s, 0.0), max_chars=max_chars)
    if state is not None:
        state.deadline += run.startup_s
    return run.results


@register(FILTERS, "toJson", "json", "jsonEncode")
def _to_json(value: Any, includeNulls: bool = False) -> str:
    return "null" if value is None else to_json(value, include_nulls=includeNulls)


_NUMBER_TYPES: dict[str, Callable[[str], Any]] = {
    "INT": int, "LONG": int, "BIGINTEGER": int, "FLOAT": float, "DOUBLE": float, "BIGDECIMAL": float,
}  # fmt: skip


@register(FILTERS, "number")
def _number(value: Any, type: str | None = None) -> Any:
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool) and type is None:
        return value
    text = format_value(value).strip()
    try:
        if type is not None:
            convert = _NUMBER_TYPES.get(str(type).upper())
            if convert is None:
                raise ExpressionError(f"number(): unknown type {type!r}; use INT, LONG, FLOAT, DOUBLE, ...")
            return convert(text)
        return int(text, 0) if re.fullmatch(r"[+-]?(0[xX][0-9a-fA-F]+|\d+)", text) else float(text)
    except ValueError as e:
        raise ExpressionError(f"number(): {value!r} is not a number") from e


@register(FILTERS, "numberFormat")
def _number_format(value: Any, format: str) -> str:
    integer_part, _, fraction_part = format.partition(".")
    min_fraction = fraction_part.count("0")
    max_fraction = min_fraction + fraction_part.count("#")
    try:
        number = Decimal(str(value)).quantize(Decimal(1).scaleb(-max_fraction), rounding=ROUND_HALF_EVEN)
    except InvalidOperation as e:
        raise ExpressionError(f"numberFormat(): {value!r} is not a number") from e
    text = f"{number:,.{max_fraction}f}" if "," in integer_part else f"{number:.{max_fraction}f}"
    whole, _, fraction = text.partition(".")
    fraction = fraction.rstrip("0").ljust(min_fraction, "0")
    digits = whole.lstrip("-")
    min_integer = integer_part.count("0")
    if digits == "0" and min_integer == 0 and fraction:
        whole = whole.replace("0", "")
    return whole + ("." + fraction if fraction else "")


register(FILTERS, "abs")(abs)


class _IndentedListDumper(yaml.SafeDumper):
    """Indents list items under their key, as Jackson's YAML writer does with INDENT_ARRAYS."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


@register(FILTERS, "yaml")
def _yaml(value: Any) -> str:
    if value is None:
        return "null"
    text = yaml.dump(to_plain(value), Dumper=_IndentedListDumper, sort_keys=False, allow_unicode=True)
    return text.removesuffix("...\n")


@register(FUNCTIONS, "fromJson", "json", "jsonDecode")
def _from_json(json_text: Any) -> Any:
    if json_text is None:
        return None
    if not isinstance(json_text, str):
        raise ExpressionError("fromJson() expects a string argument")
    try:
        return json.loads(json_text)
    except ValueError as e:
        raise ExpressionError(f"fromJson(): invalid JSON: {e}") from e


class _NoAliasLoader(yaml.SafeLoader):
    """Safe YAML without anchors/aliases, which can expand a small document into a huge value."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise ExpressionError("yaml(): YAML aliases are not allowed in expressions")
        return super().compose_node(parent, index)


@register(FUNCTIONS, "yaml", "fromYaml")
def _from_yaml(yaml_text: Any) -> Any:
    if yaml_text is None:
        return None
    if not isinstance(yaml_text, str):
        raise ExpressionError("yaml() expects a string argument")
    try:
        return yaml.load(yaml_text, Loader=_NoAliasLoader)  # a SafeLoader subclass
    except yaml.YAMLError as e:
        raise ExpressionError(f"yaml(): invalid YAML: {e}") from e
