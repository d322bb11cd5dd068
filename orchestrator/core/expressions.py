"""Render Kestra (Pebble) expressions against a run context in a sandboxed, time- and size-bounded Jinja.

A template is translated from Pebble syntax into Jinja (`pebble_syntax`), compiled once and memoised, then
rendered by a sandboxed Jinja environment (`pebble_sandbox`) whose filters, tests and functions are Kestra's
(`pebble_filters`). Rendering is bounded: a deadline checked on every loop step, call, attribute access and
output chunk, and a cap on the output and on any intermediate string or list. C code the deadline cannot
interrupt runs elsewhere: jq in a helper process killed at the deadline (`jq_sandbox`), regular expressions
on RE2 in linear time (`regex`). `render()` evaluates only the flow's own text; what came from users stays
data however often it is re-rendered (`authored`).

Every failure surfaces as `ExpressionError` (`ExpressionLimitExceeded` for the bounds), naming the
expression and its line; no Jinja exception escapes.
"""

from __future__ import annotations

import functools
import re
import time
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from jinja2 import Template, nodes, pass_context
from jinja2.exceptions import SecurityError, TemplateError, TemplateSyntaxError, UndefinedError
from jinja2.runtime import Context

from orchestrator.core import calendar_functions
from orchestrator.core.authored import PLACEHOLDER, Authored, Code, authored, skeleton
from orchestrator.core.errors import ChorusError, ExpressionError, ExpressionLimitExceeded
from orchestrator.core.pebble_filters import FILTERS, FUNCTIONS, TESTS
from orchestrator.core.pebble_runtime import CURRENT, ExpressionFunctions, RenderState, check_size, tick
from orchestrator.core.pebble_sandbox import PebbleEnvironment, PebbleUndefined, finalize_output
from orchestrator.core.pebble_syntax import Translation, translate
from orchestrator.core.pebble_values import format_value, to_plain, truthy

__all__ = [
    "PLACEHOLDER",
    "Authored",
    "ExpressionFunctions",
    "RenderLimits",
    "authored",
    "check_syntax",
    "has_expression",
    "is_true",
    "render",
    "render_parts",
    "render_typed",
    "render_value",
]

_EXPRESSION_RE = re.compile(r"\{[{%#]")
_RESULT_NAME = "__pebble_result"


@dataclass(frozen=True)
class RenderLimits:
    """Bounds on one render: wall time (less the caller's I/O), output size, and render() nesting."""

    max_seconds: float = 2.0
    max_output_chars: int = 1_000_000
    max_recursion: int = 10


@functools.cache
def _environment() -> PebbleEnvironment:
    env = PebbleEnvironment(
        autoescape=False,
        undefined=PebbleUndefined,
        finalize=finalize_output,
        keep_trailing_newline=True,
        optimized=False,  # constant folding would run filters at compile time, outside the render bounds
        cache_size=0,
        auto_reload=False,
    )
    env.filters = dict(FILTERS)
    env.tests = dict(TESTS)
    env.globals = {
        **FUNCTIONS,
        **calendar_functions.FUNCTIONS,
        "render": _render_function,
        "renderOnce": _render_once_function,
    }
    return env


# -- compilation (memoised) -----------------------------------------------------------------------------
@dataclass(frozen=True)
class _Compiled:
    template: str
    translation: Translation
    jinja: Template


def _compile_source(template: str, translation: Translation, source: str) -> Template:
    try:
        return _environment().from_string(source)
    except TemplateSyntaxError as e:
        tag = _tag_at(template, translation, e.lineno)
        raise ExpressionError(f"Syntax error in `{tag}` at line {e.lineno}: {e.message}", expression=template) from e
    except (TemplateError, RecursionError) as e:
        raise ExpressionError(f"Cannot compile the expression: {e}", expression=template) from e


@functools.lru_cache(maxsize=2048)
def _compile(template: str) -> _Compiled:
    try:
        translation = translate(template)
    except RecursionError as e:
        raise ExpressionLimitExceeded("Expression is nested too deeply to compile", expression=template) from e
    return _Compiled(template, translation, _compile_source(template, translation, translation.source))


@functools.lru_cache(maxsize=2048)
def _compile_typed(template: str) -> _Compiled | None:
    """For a single-`{{ }}` template, a Jinja template that stores the expression's value instead of printing it."""
    translation = _compile(template).translation
    if translation.expression is None:
        return None
    padding = "\n" * (translation.tags[0].line - 1)
    source = f"{padding}{{% set {_RESULT_NAME} = {translation.expression} %}}"
    return _Compiled(template, translation, _compile_source(template, translation, source))


# -- rendering ------------------------------------------------------------------------------------------
@contextmanager
def _bounded(functions: ExpressionFunctions | None, limits: RenderLimits) -> Iterator[RenderState]:
    state = RenderState(
        deadline=time.monotonic() + limits.max_seconds,
        max_output_chars=limits.max_output_chars,
        max_recursion=limits.max_recursion,
        functions=functions,
    )
    token = CURRENT.set(state)
    try:
        yield state
    finally:
        CURRENT.reset(token)


def _tag_at(template: str, translation: Translation, line: int | None, hint: str = "") -> str:
    """The tag of the template at `line` (the one mentioning `hint` when several share the line)."""
    on_line = [t for t in translation.tags if line is not None and t.line <= line <= t.end_line]
    if hint:
        on_line = [t for t in on_line if hint in t.text] or on_line
    if len(on_line) == 1:
        return on_line[0].text
    lines = template.splitlines()
    return _shorten(lines[line - 1].strip() if line is not None and 0 < line <= len(lines) else template)


def _shorten(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _error_line(error: BaseException, jinja: Template) -> int | None:
    line = None
    for frame, lineno in traceback.walk_tb(error.__traceback__):
        if frame.f_globals.get("__jinja_template__") is jinja:
            line = jinja.get_corresponding_lineno(lineno)
    return line


@contextmanager
def _reported(compiled: _Compiled) -> Iterator[None]:
    """Turn anything raised while rendering into an ExpressionError that names the expression and line."""
    try:
        yield
    except ExpressionError as e:
        if e.expression is not None:
            raise
        line = _error_line(e, compiled.jinja)
        where = f" (in `{_tag_at(compiled.template, compiled.translation, line)}` at line {line})" if line else ""
        raise type(e)(f"{e.message}{where}", expression=compiled.template) from e
    except UndefinedError as e:
        line = _error_line(e, compiled.jinja)
        name = re.search(r"`([^`]*)`", str(e))
        tag = _tag_at(compiled.template, compiled.translation, line, name.group(1) if name else "")
        raise ExpressionError(
            f"{e} used in the expression `{tag}` at line {line or 1}", expression=compiled.template
        ) from e
    except (RecursionError, MemoryError) as e:
        raise ExpressionLimitExceeded(
            "Expression is nested too deeply or too large to render", expression=compiled.template
        ) from e
    except (
        SecurityError,
        ChorusError,
        TemplateError,
        ArithmeticError,
        LookupError,
        TypeError,
        ValueError,
        AttributeError,
    ) as e:
        line = _error_line(e, compiled.jinja)
        tag = _tag_at(compiled.template, compiled.translation, line)
        kind = "Forbidden" if isinstance(e, SecurityError) else "Cannot render"
        raise ExpressionError(f"{kind} `{tag}` at line {line or 1}: {e}", expression=compiled.template) from e


def _generate(compiled: _Compiled, variables: Mapping[str, Any]) -> tuple[list[str], Context]:
    chunks: list[str] = []
    size = 0
    with _reported(compiled):
        # Merging the globals here (shared=True) skips Jinja's slower per-render ChainMap walk.
        context = compiled.jinja.new_context({**_environment().globals, **variables}, shared=True)
        for chunk in compiled.jinja.root_render_func(context):
            size += len(chunk)
            check_size(size)
            tick()
            chunks.append(chunk)
    return chunks, context


def _render_in(template: str, variables: Mapping[str, Any]) -> str:
    if not has_expression(template):
        return template
    return "".join(_generate(_compile(template), variables)[0])


def _render_with_passes(context: Context, template: Any, recursive: bool) -> str | None:
    """Kestra's render(): render a string again until it stops changing (or once), within max_recursion.

    Only authored text is ever evaluated (authored.py): render() of data returns it unchanged, and what a
    pass printed from data reaches the next pass through a placeholder, never as template text.
    """
    state = CURRENT.get()
    if state is None:
        raise ExpressionError("render() can only be called while rendering")
    if template is None:
        return None
    if not isinstance(template, str):
        raise ExpressionError("render() expects a string")
    if not isinstance(template, Authored):
        return str.__str__(template)  # an input, output, trigger body...: data is never code
    if state.depth >= state.max_recursion:
        raise ExpressionLimitExceeded(f"render() is nested more than {state.max_recursion} levels deep")
    variables = context.get_all()
    state.depth += 1
    try:
        source = str.__str__(template)
        data: tuple[str, ...] = ()
        for _ in range(state.max_recursion):
            chunks = _pass_chunks(source, {**variables, PLACEHOLDER: data})
            if not recursive:
                return "".join(chunks)
            next_source, next_data = skeleton(chunks)
            if (next_source, next_data) == (source, data):
                return "".join(chunks)
            source, data = next_source, next_data
        raise ExpressionLimitExceeded(f"render() did not settle after {state.max_recursion} passes")
    finally:
        state.depth -= 1


def _pass_chunks(source: str, variables: Mapping[str, Any]) -> list[str]:
    if not has_expression(source):
        return [Code(source)]
    return _generate(_compile(source), variables)[0]


@pass_context
def _render_function(context: Context, template: Any, recursive: bool = True) -> str | None:
    return _render_with_passes(context, template, recursive)


@pass_context
def _render_once_function(context: Context, template: Any) -> str | None:
    return _render_with_passes(context, template, False)


def render(
    template: str,
    variables: Mapping[str, Any],
    *,
    functions: ExpressionFunctions | None = None,
    limits: RenderLimits = RenderLimits(),
) -> str:
    """Render a Pebble template to text, Kestra-style (null as "", booleans lower-case, maps as JSON)."""
    if not has_expression(template):
        return template
    with _bounded(functions, limits):
        return _render_in(template, variables)


def render_parts(
    template: str,
    variables: Mapping[str, Any],
    *,
    functions: ExpressionFunctions | None = None,
    limits: RenderLimits = RenderLimits(),
) -> list[tuple[str, bool]]:
    """Render once, as a render() pass: each chunk of the output with whether it is authored text (True) or data
    that an expression printed (inputs, outputs, trigger bodies, KV values...), which must never become code."""
    if not has_expression(template):
        return [(template, True)]
    with _bounded(functions, limits) as state:
        state.depth += 1  # chunks are told apart only inside a pass (authored.py)
        chunks = _generate(_compile(template), variables)[0]
    return [(str.__str__(chunk), isinstance(chunk, Code)) for chunk in chunks]


def render_typed(
    template: str,
    variables: Mapping[str, Any],
    *,
    functions: ExpressionFunctions | None = None,
    limits: RenderLimits = RenderLimits(),
) -> Any:
    """Like render(), but a template that is one `{{ expr }}` returns the expression's native value."""
    if not has_expression(template):
        return template
    typed = _compile_typed(template)
    with _bounded(functions, limits):
        if typed is None:
            return _render_in(template, variables)
        _, context = _generate(typed, variables)
        value = context.vars.get(_RESULT_NAME)
        with _reported(typed):
            return to_plain(value)


def render_value(
    value: Any,
    variables: Mapping[str, Any],
    *,
    functions: ExpressionFunctions | None = None,
    limits: RenderLimits = RenderLimits(),
) -> Any:
    """Render every string inside a value (dict keys and values, list items); other scalars are unchanged.

    The whole value shares one render budget.
    """
    with _bounded(functions, limits):
        return _render_nested(value, variables)


def _render_nested(value: Any, variables: Mapping[str, Any]) -> Any:
    if isinstance(value, str):
        return _render_in(value, variables)
    if isinstance(value, Mapping):
        return {_render_nested(k, variables): _render_nested(v, variables) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_render_nested(v, variables) for v in value]
    return value


def is_true(rendered: Any) -> bool:
    """Kestra's If/runIf truthiness of a rendered condition.

    Kestra's TruthUtils treats "false", "0", "-0" and "" as false and anything else as true; here the
    comparison is also trimmed and case-insensitive, and None, False and 0 are false.
    """
    if rendered is None or isinstance(rendered, str | bool | int | float):
        return truthy(rendered)
    return truthy(format_value(rendered))


def parse_source(source: str) -> nodes.Template:
    """Parse Jinja source (a translated template) with the renderer's environment, without compiling it."""
    return _environment().parse(source)


def check_syntax(template: str) -> None:
    """Compile a template without rendering it, raising ExpressionError on a syntax error (for flow validation)."""
    if has_expression(template):
        # Compiling folds constant filter calls (`{{ 'a' | indent(9) }}`): under the default bounds, not none.
        with _bounded(None, RenderLimits()):
            _compile(template)


def has_expression(text: str) -> bool:
    """Whether a string contains Pebble syntax (`{{`, `{%` or `{#`) and so needs rendering."""
    return _EXPRESSION_RE.search(text) is not None
