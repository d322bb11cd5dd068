"""Expressions checked at deploy: Pebble syntax, and filter, function and test names nobody defines.

A flow's expressions are otherwise only compiled when a task renders them, so a typo surfaces as a
failed task run hours later. Here each template is translated and parsed (never rendered) and its
names are looked up in the renderer's tables and in Kestra's own: a name Kestra defines but Chorus
does not implement yet is *not* reported (the flow is valid Kestra; it fails at run time, saying so).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from jinja2 import TemplateSyntaxError, nodes
from pydantic import JsonValue

from orchestrator.core import calendar_functions, pebble_filters
from orchestrator.core.errors import ExpressionError
from orchestrator.core.expressions import has_expression, parse_source
from orchestrator.core.pebble_syntax import translate

__all__ = ["ExpressionProblem", "expression_problems", "strings_at", "value_at", "yaml_position"]

# Pebble's core extension and Kestra's (every 0.x-2.x version), beyond what the renderer implements.
_KESTRA_FILTERS = frozenset({
    "abbreviate", "abs", "base64decode", "base64encode", "capitalize", "chunk", "className", "date", "dateAdd",
    "default", "distinct", "endsWith", "escape", "escapeChar", "first", "flatten", "indent", "join", "jq", "json",
    "jsonEncode", "keys", "last", "length", "lower", "md5", "merge", "nindent", "number", "numberformat", "raw",
    "replace", "reverse", "rsort", "sha1", "sha256", "sha512", "slice", "slugify", "sort", "split", "startsWith",
    "string", "substringAfter", "substringAfterLast", "substringBefore", "substringBeforeLast", "timestamp",
    "timestampMicro", "timestampMilli", "timestampNano", "title", "toIon", "toJson", "trim", "upper", "urldecode",
    "urlencode", "values", "yaml", "fromJson", "fromIon", "fromYaml",
})  # fmt: skip
_KESTRA_FUNCTIONS = frozenset({
    "appLink", "block", "credential", "currentEachOutput", "dayOfMonth", "dayOfWeek", "decrypt", "encrypt", "env",
    "errorLogs", "fetchContext", "fileExists", "fileSize", "fileURI", "fromIon", "fromJson", "fromYaml", "hourOfDay",
    "http", "i18n", "id", "ionDecode", "isDayWeekInMonth", "isFileEmpty", "isLastWorkingDay", "isPublicHoliday",
    "isWeekend", "json", "jsonDecode", "ksuid", "kv", "loopOutputs", "max", "min", "monthOfYear", "nanoId", "now",
    "parent", "printContext", "randomInt", "randomPort", "range", "read", "render", "renderOnce", "secret",
    "subflow", "tasksWithState", "uuid", "yaml",
})  # fmt: skip
_KESTRA_TESTS = frozenset({"defined", "empty", "even", "iterable", "json", "map", "null", "odd", "none"})

_FILTERS = _KESTRA_FILTERS | frozenset(pebble_filters.FILTERS)
_FUNCTIONS = _KESTRA_FUNCTIONS | frozenset(pebble_filters.FUNCTIONS) | frozenset(calendar_functions.FUNCTIONS)
_TESTS = _KESTRA_TESTS | frozenset(pebble_filters.TESTS)
_AT_LINE = re.compile(r" at line (\d+)")
_OPENING = re.compile(r"\{[{%]")


@dataclass(frozen=True)
class ExpressionProblem:
    """One problem in a template: its message and where it is in the template text (1-based line, 0-based column)."""

    message: str
    line: int
    column: int
    syntax: bool = False  #: a syntax error (the template does not parse), not an unknown name


def _at(template: str, line: int) -> ExpressionProblem:
    lines = template.splitlines() or [""]
    text = lines[min(max(line, 1), len(lines)) - 1]
    found = _OPENING.search(text)
    return ExpressionProblem("", line, found.start() if found else 0)


def _problem(template: str, line: int, message: str, *, syntax: bool = False) -> ExpressionProblem:
    where = _at(template, line)
    return ExpressionProblem(message, where.line, where.column, syntax)


def expression_problems(template: str) -> list[ExpressionProblem]:
    """The syntax error, or the unknown filters, functions and tests, of one Pebble template."""
    if not has_expression(template):
        return []
    try:
        source = translate(template).source
    except ExpressionError as e:
        found = _AT_LINE.search(e.message)
        return [_problem(template, int(found.group(1)) if found else 1, e.message, syntax=True)]
    try:
        tree = parse_source(source)
    except TemplateSyntaxError as e:
        return [_problem(template, e.lineno, f"Syntax error at line {e.lineno}: {e.message}", syntax=True)]
    local = {n.name for n in tree.find_all(nodes.Macro)}
    local |= {n.name for n in tree.find_all(nodes.Name) if n.ctx in ("store", "param")}
    problems: list[ExpressionProblem] = []
    for node in tree.find_all((nodes.Filter, nodes.Test, nodes.Call)):
        if isinstance(node, nodes.Filter) and node.name not in _FILTERS:
            problems.append(_problem(template, node.lineno, f"unknown filter '{node.name}'"))
        elif isinstance(node, nodes.Test) and node.name not in _TESTS:
            problems.append(_problem(template, node.lineno, f"unknown test '{node.name}'"))
        elif isinstance(node, nodes.Call) and isinstance(node.node, nodes.Name):
            name = node.node.name
            if not name.startswith("__pebble_") and name not in _FUNCTIONS and name not in local:
                problems.append(_problem(template, node.lineno, f"unknown function '{name}'"))
    return problems


# -- where a template sits in the flow document ------------------------------------------------------

_PATH_PART = re.compile(r"[^.\[\]]+|\[\d+\]")


def value_at(document: Mapping[str, JsonValue], path: str) -> JsonValue:
    """The value at a field path (`tasks[0].then[1].runIf`) of a document, or None."""
    node: JsonValue = dict(document)
    for part in _PATH_PART.findall(path):
        if part.startswith("[") and isinstance(node, list):
            index = int(part[1:-1])
            node = node[index] if index < len(node) else None
        elif isinstance(node, dict):
            node = node.get(part)
        else:
            return None
    return node


def strings_at(value: JsonValue, path: str) -> Iterator[tuple[str, str]]:
    """Every string in a value, with its field path."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from strings_at(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from strings_at(item, f"{path}[{index}]")


def yaml_position(
    source: list[str], start_line: int | None, start_column: int | None, problem: ExpressionProblem
) -> tuple[int | None, int | None]:
    """The YAML line and column of a problem in a scalar starting at (`start_line`, `start_column`).

    The scalar's style, read from the source line, decides: a block scalar's text starts on the next line
    at its indentation, a quoted one a column after its quote, a plain one where it starts.
    """
    if start_line is None or start_column is None:
        return start_line, start_column
    text = source[start_line - 1] if start_line <= len(source) else ""
    opener = text[start_column - 1 : start_column]
    if opener in ("|", ">"):
        target = start_line + problem.line
        body = source[target - 1] if target <= len(source) else ""
        return target, len(body) - len(body.lstrip()) + problem.column + 1
    if problem.line == 1:
        return start_line, start_column + (1 if opener in ("'", '"') else 0) + problem.column
    return start_line + problem.line - 1, problem.column + 1
