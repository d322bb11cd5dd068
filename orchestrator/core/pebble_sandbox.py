"""The sandboxed Jinja environment that runs translated Pebble: Pebble operators, Java arithmetic, guarded access.

`pebble_syntax` emits `__pebble_<name>(...)` markers for what Jinja cannot express (`??`, `is defined`,
`~`, `..`, `contains`); `PebbleEnvironment` compiles them into direct calls, checks the render deadline
on every attribute access, item lookup, call and operator, and bounds what an operator can build.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from jinja2 import StrictUndefined, Undefined, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import UndefinedError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import missing

from orchestrator.core.authored import Authored, Code
from orchestrator.core.errors import ExpressionError, ExpressionLimitExceeded
from orchestrator.core.pebble_filters import FILTERS
from orchestrator.core.pebble_operators import concat, contains, inclusive_range, is_in, iterate
from orchestrator.core.pebble_runtime import (
    CURRENT,
    check_size,
    check_value_size,
    fail_undefined,
    reject_undefined,
    tick,
)
from orchestrator.core.pebble_values import deep_size, format_value, truthy

#: str methods a template may call; the rest (ljust, center, zfill, format...) could build huge strings.
_STR_METHODS = frozenset(
    {
        "upper", "lower", "strip", "lstrip", "rstrip", "startswith", "endswith", "split", "rsplit", "splitlines",
        "title", "capitalize", "find", "rfind", "count", "isdigit", "isalpha", "isalnum", "isspace", "islower",
        "isupper", "casefold", "swapcase",
    }
)  # fmt: skip


class PebbleUndefined(StrictUndefined):
    """Strict undefined values whose error names the missing variable as Pebble does."""

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
    """Pebble's `defined` test is `!(input == null)` (DefinedTest extends NullTest): null is not defined."""
    try:
        resolved = value()
    except UndefinedError:
        return False
    return resolved is not None and not isinstance(resolved, Undefined)


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


class PebbleEnvironment(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox with Pebble's operators, attribute rules and arithmetic, every step bounded."""

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


def finalize_output(value: Any) -> Any:
    """What `{{ expr }}` prints; inside a render() pass, an Authored value's text stays code, all else is data."""
    text = format_value(value)
    if isinstance(value, Authored):
        state = CURRENT.get()
        return Code(text) if state is not None and state.depth else str.__str__(text)
    return text
