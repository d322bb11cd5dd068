"""Render Kestra (Pebble) expressions against a run context in a sandboxed, time- and size-bounded Jinja.

A template is translated from Pebble syntax into Jinja (`pebble_syntax`), compiled once and memoised, then
rendered by an `ImmutableSandboxedEnvironment` whose filters, tests and functions are Kestra's
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
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from jinja2 import StrictUndefined, Template, Undefined, nodes, pass_context
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError, TemplateError, TemplateSyntaxError, UndefinedError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import missing

from orchestrator.core import calendar_functions
from orchestrator.core.authored import PLACEHOLDER, Authored, Code, authored, skeleton
from orchestrator.core.errors import ChorusError, ExpressionError, ExpressionLimitExceeded
from orchestrator.core.pebble_filters import FILTERS, FUNCTIONS, TESTS
from orchestrator.core.pebble_operators import concat, contains, inclusive_range, is_in, iterate
from orchestrator.core.pebble_runtime import (
    CURRENT,
    ExpressionFunctions,
    RenderState,
    check_size,
    check_value_size,
    fail_undefined,
    reject_undefined,
    tick,
)
from orchestrator.core.pebble_syntax import Translation, translate
from orchestrator.core.pebble_values import deep_size, format_value, to_plain, truthy

__all__ = [
    "Authored",
    "ExpressionFunctions",
    "RenderLimits",
    "authored",
    "check_syntax",
    "has_expression",
    "is_true",
    "render",
    "render_typed",
    "render_value",
]

_EXPRESSION_RE = re.compile(r"\{[{%#]")
_RESULT_NAME = "__pebble_result"
#: str methods a template may call; the rest (ljust, center, zfill, format...) could build huge strings.
_STR_METHODS = frozenset(
    {
        "upper", "lower", "strip", "lstrip", "rstrip", "startswith", "endswith", "split", "rsplit", "splitlines",
        "title", "capitalize", "find", "rfind", "count", "isdigit", "isalpha", "isalnum", "isspace", "islower",
        "isupper", "casefold", "swapcase",
    }
)  # fmt: skip


@dataclass(frozen=True)
class RenderLimits:
    """Bounds on one render: wall time (less the caller's I/O), output size, and render() nesting."""

    max_seconds: float = 2.0
    max_output_chars: int = 1_000_000
    max_recursion: int = 10


# -- the sandbox ----------------------------------------------------------------------------------------
class _Undefined(StrictUndefined):
    __slots__ = ()

    @property
    def _undefined_message(self) -> str:
        return self._undefined_hint or f"Unable to find `{self._undefined_name}`"


def _coalesce(left: Callable[[], Any], right: Callable[[], Any]) -> Any:
    """Kestra's `??`: the right side when the left is undefined (anywhere along its path), null, or fails
    to evaluate (Kestra's operator also swallows errors of the left side, e.g. a missing `kv()` key)."""
    try:
        value = left()
    except ExpressionLimitExceeded:
        raise
    except (UndefinedError, ExpressionError):
        return right()
    return right() if value is None or isinstance(value, Undefined) else value


def _undefined_coalesce(left: Callable[[], Any], right: Callable[[], Any]) -> Any:
    """Kestra's `???`: the right side only when the left is undefined; null stays null."""
    try:
        value = left()
    except UndefinedError:
        return right()
    return right() if isinstance(value, Undefined) else value


def _defined(value: Callable[[], Any]) -> bool:
    try:
        return not isinstance(value(), Undefined)
    except UndefinedError:
        return False


def _default(value: Callable[[], Any], default: Any = None) -> Any:
    """Pebble's `default` filter, which (unlike other filters) accepts an undefined value."""
    try:
        resolved = value()
    except UndefinedError:
        return default
    return FILTERS["default"](resolved, default)


def _variable(context: Context, name: str) -> Any:
    """A template variable whose name Jinja reserves (`self`, `caller`, ...)."""
    value = context.resolve_or_missing(name)
    return context.environment.undefined(name=name) if value is missing else value


#: __pebble_<name> markers emitted by pebble_syntax: (argument positions evaluated lazily, takes the context).
_MARKERS: dict[str, tuple[frozenset[int], bool]] = {
    "coalesce": (frozenset({0, 1}), False),
    "ucoalesce": (frozenset({0, 1}), False),
    "defined": (frozenset({0}), False),
    "default": (frozenset({0}), False),
    "var": (frozenset(), True),
    "truthy": (frozenset(), False),
    "iter": (frozenset(), False),
    "concat": (frozenset(), False),
    "range": (frozenset(), False),
    "contains": (frozenset(), False),
    "isin": (frozenset(), False),
}


_RENDER_NAMES = frozenset({"render", "renderOnce"})


class _CodeGenerator(CodeGenerator):
    """Compiles `__pebble_<name>(...)` markers into direct calls of `environment.pebble_<name>`.

    Lazy arguments become lambdas, so `a ?? b` evaluates `b` only when needed and can catch the undefined
    error raised anywhere inside `a` (Pebble's semantics), which no Jinja expression can express.
    """

    def _output_const_repr(self, group: Iterable[Any]) -> str:
        # The template's own text: code for a next render() pass (authored.py), unlike what expressions print.
        return f"environment.pebble_code({super()._output_const_repr(group)})"

    def visit_Const(self, node: nodes.Const, frame: Frame) -> None:
        if isinstance(node.value, str) and getattr(node, "chorus_authored", False):
            self.write(f"environment.pebble_authored({node.value!r})")
            return
        super().visit_Const(node, frame)

    def visit_Call(self, node: nodes.Call, frame: Frame, forward_caller: bool = False) -> None:
        callee = node.node
        first = node.args[0] if node.args else None
        if isinstance(callee, nodes.Name) and callee.name in _RENDER_NAMES and isinstance(first, nodes.Const):
            # `render('{{ flow.id }}')`: a string literal is the author's text, as a flow variable is.
            first.chorus_authored = True  # type: ignore[attr-defined]
        if not (isinstance(callee, nodes.Name) and callee.name.startswith("__pebble_")):
            super().visit_Call(node, frame, forward_caller=forward_caller)
            return
        name = callee.name.removeprefix("__pebble_")
        lazy, takes_context = _MARKERS[name]
        self.write(f"environment.pebble_{name}(" + ("context, " if takes_context else ""))
        for index, argument in enumerate(node.args):
            self.write(", " if index else "")
            self.write("lambda: " if index in lazy else "")
            self.visit(argument, frame)
        for keyword in node.kwargs:
            self.write(f", {keyword.key}=")
            self.visit(keyword.value, frame)
        self.write(")")


def _java_divide(left: int, right: int) -> int:
    quotient = abs(left) // abs(right)
    return quotient if (left >= 0) == (right > 0) else -quotient


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


#: Kestra computes with Java longs (64 bits); past this, squaring in a loop of `set` tags ran for minutes.
_MAX_INT_BITS = 4096


class _PebbleEnvironment(ImmutableSandboxedEnvironment):
    code_generator_class = _CodeGenerator
    intercepted_binops = frozenset({"+", "-", "*", "/", "%"})

    pebble_coalesce = staticmethod(_coalesce)
    pebble_ucoalesce = staticmethod(_undefined_coalesce)
    pebble_defined = staticmethod(_defined)
    pebble_default = staticmethod(_default)
    pebble_var = staticmethod(_variable)
    pebble_truthy = staticmethod(truthy)
    pebble_iter = staticmethod(iterate)
    pebble_concat = staticmethod(concat)
    pebble_range = staticmethod(inclusive_range)
    pebble_contains = staticmethod(contains)
    pebble_isin = staticmethod(is_in)
    pebble_authored = Authored

    @staticmethod
    def pebble_code(text: str) -> str:
        """Literal template text; marked as code only inside a render() pass, where it matters."""
        state = CURRENT.get()
        return Code(text) if state is not None and state.depth else text

    def getattr(self, obj: Any, attribute: str) -> Any:
        """Dot access: map keys first and only (so `outputs.x.values` is the key), few str methods, no dunders."""
        tick()
        if isinstance(obj, Undefined):
            fail_undefined(obj)
        if isinstance(obj, Mapping):
            return obj[attribute] if attribute in obj else self.undefined(obj=obj, name=attribute)
        if isinstance(obj, str | list | tuple) and not attribute.startswith("_"):
            allowed = _STR_METHODS if isinstance(obj, str) else ("index", "count")
            return getattr(obj, attribute) if attribute in allowed else self.undefined(obj=obj, name=attribute)
        if isinstance(obj, int | float | complex | bytes | bytearray) and not attribute.startswith("_"):
            return self.undefined(obj=obj, name=attribute)  # e.g. (1).to_bytes(10**9) would allocate a gigabyte
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        tick()
        if isinstance(obj, Undefined):
            fail_undefined(obj)
        if isinstance(obj, Mapping):
            try:
                return obj[argument]
            except (KeyError, TypeError):
                return self.undefined(obj=obj, name=argument)
        if isinstance(obj, Sequence) and _is_int(argument):
            try:
                return obj[argument]
            except IndexError:
                return self.undefined(obj=obj, name=argument)
        if isinstance(argument, str):
            return self.getattr(obj, argument)
        return self.undefined(obj=obj, name=argument)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        tick()
        result = super().call(__context, __obj, *args, **kwargs)
        check_value_size(result)
        return result

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        """Pebble arithmetic: integer `/` truncates and `%` keeps the dividend's sign, as in Java."""
        tick()
        reject_undefined(left, right)
        try:
            if operator in ("/", "%") and _is_int(left) and _is_int(right):
                quotient = _java_divide(left, right)
                return quotient if operator == "/" else left - right * quotient
            if operator == "%" and not (_is_number(left) and _is_number(right)):
                # Python would format (`'%0200000000d' % 1` built 200 MB); Pebble's `%` is only a remainder.
                raise ExpressionError("`%` is the remainder of two numbers")
            if operator == "*":
                if _is_int(left) and _is_int(right) and left.bit_length() + right.bit_length() > _MAX_INT_BITS:
                    raise ExpressionLimitExceeded(f"Expression would compute an integer over {_MAX_INT_BITS} bits")
                for sized, count in ((left, right), (right, left)):
                    if isinstance(sized, str) and _is_int(count):
                        check_size(len(sized) * count)
                    elif isinstance(sized, list | tuple) and _is_int(count):
                        # Items count with what they hold: `[[1] * 1000] * 1000` is a million items to print.
                        check_size(deep_size(sized) * count)
            if operator == "+" and isinstance(left, str | list | tuple) and isinstance(right, str | list | tuple):
                check_size(len(left) + len(right))
            return self.binop_table[operator](left, right)
        except ZeroDivisionError as e:
            raise ExpressionError("Division by zero") from e


def _finalize(value: Any) -> Any:
    """What `{{ expr }}` prints; inside a render() pass, an Authored value's text stays code, all else is data."""
    text = format_value(value)
    if isinstance(value, Authored):
        state = CURRENT.get()
        return Code(text) if state is not None and state.depth else str.__str__(text)
    return text


@functools.cache
def _environment() -> _PebbleEnvironment:
    env = _PebbleEnvironment(
        autoescape=False,
        undefined=_Undefined,
        finalize=_finalize,
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
