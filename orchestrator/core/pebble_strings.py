"""Kestra's string filters: case, substrings, replace, split, slugify, escaping, indenting, hashes, URL, base64."""

from __future__ import annotations

import base64
import hashlib
import re
import unicodedata
import urllib.parse
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from orchestrator.core import regex
from orchestrator.core.errors import ExpressionError
from orchestrator.core.pebble_runtime import check_size, register
from orchestrator.core.pebble_values import format_value

FILTERS: dict[str, Callable[..., Any]] = {}


@register(FILTERS, "abbreviate")
def _abbreviate(value: Any, length: int) -> str:
    text = format_value(value)
    if len(text) <= length:
        return text
    if length < 3:
        raise ExpressionError("abbreviate() needs a length of at least 3")
    return text[: length - 3] + "..."


@register(FILTERS, "base64decode")
def _base64decode(value: Any) -> str:
    try:
        return base64.b64decode(format_value(value), validate=True).decode()
    except (ValueError, UnicodeDecodeError) as e:
        raise ExpressionError(f"base64decode: not valid base64 text: {e}") from e


_ESCAPE_STYLES = {"single": ("'", "\\'"), "double": ('"', '\\"'), "shell": ("'", "'\\''")}


@register(FILTERS, "escapeChar")
def _escape_char(value: Any, type: str) -> Any:
    style = _ESCAPE_STYLES.get(str(type).lower())
    if style is None:
        raise ExpressionError("escapeChar() expects the type to be 'single', 'double' or 'shell'")
    return _map_strings(value, lambda text: text.replace(*style))


def _map_strings(value: Any, transform: Callable[[str], str]) -> Any:
    """Apply `transform` to the string form of every leaf of a value; maps and lists keep their shape."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        return {k: _map_strings(v, transform) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_map_strings(v, transform) for v in value]
    return transform(format_value(value))


def _indent_lines(value: Any, amount: int, prefix: str, *, leading: bool) -> str | None:
    if value is None:
        return None
    text = format_value(value)
    if not text:
        return text
    if not isinstance(amount, int) or amount < 0:
        raise ExpressionError("indent() expects a positive integer amount")
    newline = next((sep for sep in ("\r\n", "\n\r", "\n", "\r") if sep in text), "\n")
    text = newline + text if leading else text
    if newline not in text:
        return text
    check_size(max(len(text) + text.count(newline) * amount * len(prefix), amount * len(prefix)))
    return text.replace(newline, newline + prefix * amount)


@register(FILTERS, "replace")
def _replace(value: Any, replace_pairs: Any, regexp: Any = False) -> Any:
    if isinstance(replace_pairs, str):
        # Kestra's older replace('old', 'new') form.
        pairs, use_regexp = {replace_pairs: format_value(regexp)}, False
    elif isinstance(replace_pairs, Mapping):
        pairs, use_regexp = {format_value(k): format_value(v) for k, v in replace_pairs.items()}, bool(regexp)
    else:
        raise ExpressionError("replace() expects a map of replacements, e.g. replace({'old': 'new'})")
    if use_regexp:
        for pattern in pairs:
            _compiled(pattern, "replace")

    def apply(text: str) -> str:
        for old, new in pairs.items():
            if use_regexp:
                text = regex.substitute(old, new, text, check_size)
            elif old:
                check_size(len(text) + text.count(old) * max(len(new) - len(old), 0))
                text = text.replace(old, new)
        return text

    return _map_strings(value, apply)


def _compiled(pattern: str, name: str) -> regex.Pattern:
    """The RE2 program of a pattern a template passes to `name`, or an ExpressionError saying why not."""
    try:
        return regex.compile_pattern(pattern)
    except regex.RegexInvalid as e:
        raise ExpressionError(f"{name}(): {e}") from e


@register(FILTERS, "slugify")
def _slugify(value: Any) -> str:
    text = re.sub(r"\s", "-", format_value(value))
    text = re.sub(r"[^\w-]", "", unicodedata.normalize("NFD", text), flags=re.ASCII).replace("_", "-")
    text = re.sub(r"-{2,}", "-", text)
    return text.removeprefix("-").removesuffix("-").lower()


@register(FILTERS, "split")
def _split(value: Any, delimiter: str, limit: int | None = None) -> list[str]:
    text = format_value(value)
    if limit is not None and limit > 0:
        return text.split(delimiter, limit - 1)
    parts = text.split(delimiter)
    while parts and parts[-1] == "" and limit is None:
        parts.pop()  # Java's String.split drops trailing empty strings
    return parts


@register(FILTERS, "string")
def _string(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return format_value(value)
    text = format_value(value)
    try:
        Decimal(text)
    except InvalidOperation as e:
        raise ExpressionError(f"string() expects a number or a numeric string, got {text!r}") from e
    return text


@register(FILTERS, "substringBefore")
def _substring_before(value: Any, separator: str) -> str:
    text = format_value(value)
    return text.split(separator, 1)[0] if separator else ""


@register(FILTERS, "substringBeforeLast")
def _substring_before_last(value: Any, separator: str) -> str:
    text = format_value(value)
    return text.rsplit(separator, 1)[0] if separator and separator in text else text


@register(FILTERS, "substringAfter")
def _substring_after(value: Any, separator: str) -> str:
    text = format_value(value)
    return text.split(separator, 1)[1] if separator in text else ""


@register(FILTERS, "substringAfterLast")
def _substring_after_last(value: Any, separator: str) -> str:
    text = format_value(value)
    return text.rsplit(separator, 1)[1] if separator and separator in text else ""


def _hexdigest(algorithm: str) -> Callable[[Any], str]:
    return lambda value: hashlib.new(algorithm, format_value(value).encode(), usedforsecurity=False).hexdigest()


_SIMPLE_FILTERS: dict[str, Callable[..., Any]] = {
    "base64encode": lambda value: base64.b64encode(format_value(value).encode()).decode(),
    "capitalize": lambda value: format_value(value)[:1].upper() + format_value(value)[1:],
    "title": lambda value: re.sub(r"(^|\s)(\S)", lambda m: m.group(1) + m.group(2).upper(), format_value(value)),
    "upper": lambda value: format_value(value).upper(),
    "lower": lambda value: format_value(value).lower(),
    "trim": lambda value: format_value(value).strip(),
    "startsWith": lambda value, prefix: format_value(value).startswith(format_value(prefix)),
    "endsWith": lambda value, suffix: format_value(value).endswith(format_value(suffix)),
    "md5": _hexdigest("md5"),
    "sha1": _hexdigest("sha1"),
    "sha256": _hexdigest("sha256"),
    "sha512": _hexdigest("sha512"),
    "urlencode": lambda value: urllib.parse.quote_plus(format_value(value), safe="*").replace("~", "%7E"),
    "urldecode": lambda value: urllib.parse.unquote_plus(format_value(value)),
    "indent": lambda value, amount, prefix=" ": _indent_lines(value, amount, prefix, leading=False),
    "nindent": lambda value, amount, prefix=" ": _indent_lines(value, amount, prefix, leading=True),
}
for _name, _filter in _SIMPLE_FILTERS.items():
    register(FILTERS, _name)(_filter)
