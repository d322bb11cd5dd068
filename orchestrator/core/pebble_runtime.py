"""The state of one render and the guards every template-callable passes: deadline, size limit, strict undefined.

Every callable a template can reach goes through `register`: it checks the render deadline, refuses an
undefined argument (strict variables, as Kestra configures Pebble) and refuses a result larger than the
output limit. Callables that could build a large value in one step (join, replace, indent, ranges) check
the size they would produce before allocating it.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, NoReturn, Protocol, TypeVar

from jinja2 import Undefined
from jinja2.runtime import Context
from pydantic import JsonValue

from orchestrator.core.errors import ExpressionLimitExceeded

_F = TypeVar("_F", bound=Callable[..., Any])


class ExpressionFunctions(Protocol):
    """I/O-backed functions supplied by the caller (the worker). A missing method makes its function fail."""

    def secret(self, name: str) -> str: ...

    def kv(self, key: str, namespace: str | None, error_on_missing: bool) -> JsonValue: ...

    def error_logs(self) -> list[dict[str, JsonValue]]:
        """Kestra's errorLogs(): the error log lines of the current execution."""
        ...

    def read_file(self, uri: str) -> str:
        """Kestra's read(): a storage file of this execution (or of the execution that started it)."""
        ...

    # Optional (looked up with getattr, like every method here): Kestra 2's subflow(), which runs a flow and
    # waits for its end. Returns {id, state, outputs, labels: [{key, value}]}. See core/pebble_subflow.py.


@dataclass
class RenderState:
    """What the filters and functions of one render need: its deadline, output limit and I/O functions."""

    deadline: float  #: time.monotonic() value past which rendering stops
    max_output_chars: int
    max_recursion: int
    functions: ExpressionFunctions | None
    depth: int = 0  #: nesting of render() calls


CURRENT: ContextVar[RenderState | None] = ContextVar("chorus_render_state", default=None)


def tick() -> None:
    """Stop the current render once its deadline has passed."""
    state = CURRENT.get()
    if state is not None and time.monotonic() > state.deadline:
        raise ExpressionLimitExceeded("Expression took longer than its time limit to render")


def check_size(size: int) -> None:
    """Refuse a value (or output) of `size` characters or items once it passes the output limit."""
    state = CURRENT.get()
    if state is not None and size > state.max_output_chars:
        raise ExpressionLimitExceeded(
            f"Expression would produce {size} characters or items, over the limit of {state.max_output_chars}"
        )


def check_value_size(value: object) -> None:
    """Refuse a string, list or map longer than the output limit."""
    if isinstance(value, str | list | tuple | dict):
        check_size(len(value))


@contextlib.contextmanager
def io_clock() -> Iterator[None]:
    """Give back to the render budget the time spent waiting on the caller's I/O (secrets, KV, logs)."""
    started = time.monotonic()
    try:
        yield
    finally:
        state = CURRENT.get()
        if state is not None:
            state.deadline += time.monotonic() - started


def reject_undefined(*values: object) -> None:
    """Raise the undefined-variable error of the first undefined value among `values`."""
    for value in values:
        if isinstance(value, Undefined):
            fail_undefined(value)


def fail_undefined(value: Undefined) -> NoReturn:
    """Raise the strict undefined-variable error an undefined value carries."""
    value._fail_with_undefined_error()
    raise AssertionError("unreachable")  # pragma: no cover


def _guarded(function: _F) -> _F:
    @functools.wraps(function)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        tick()
        reject_undefined(*(a for a in args if not isinstance(a, Context)), *kwargs.values())
        result = function(*args, **kwargs)
        check_value_size(result)
        return result

    return guarded  # type: ignore[return-value]


def register(table: dict[str, Callable[..., Any]], *names: str) -> Callable[[_F], _F]:
    """Decorator: put the guarded form of a function in `table` under each of `names`; the function stays as is."""

    def add(function: _F) -> _F:
        guarded = _guarded(function)
        for name in names:
            table[name] = guarded
        return function

    return add
