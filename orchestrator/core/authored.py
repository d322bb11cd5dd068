"""Which text render() may evaluate again: the flow's own (authored) text is code, everything else is data.

Kestra's `render(vars.greeting)` over `greeting: "Hello {{ inputs.name }}"` renders the variable, then renders
the result again until it settles. Done naively, the second pass evaluates whatever a webhook caller posted
as `name`: user data turned into code. Here a render() pass yields its output as chunks, and only chunks
known to be authored stay code for the next pass: the template's literal text, and values that are
`Authored` strings (the flow's `variables`, a string literal passed straight to render()). Every other
chunk (inputs, trigger bodies, task outputs, KV values, anything a filter computed) is data: it is put
back through a placeholder variable, so no later pass can parse it. An allow-list: text of unknown origin
is data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["PLACEHOLDER", "Authored", "Code", "authored", "skeleton"]

#: The variable holding a pass's data chunks in the next pass's source: `{{ __chorus_data[3] }}`.
PLACEHOLDER = "__chorus_data"


class Authored(str):
    """Text written by the flow's author (its `variables`), which render() may evaluate as a template."""

    __slots__ = ()


class Code(str):
    """A chunk of render() output that the next pass may evaluate (see module docstring)."""

    __slots__ = ()

    def __str__(self) -> str:
        return self  # Jinja calls str() on every output; keep the mark


def authored(value: Any) -> Any:
    """`value` with every string inside it (map values, list items) marked Authored; other values unchanged."""
    if isinstance(value, str):
        return Authored(value)
    if isinstance(value, Mapping):
        return {k: authored(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [authored(v) for v in value]
    return value


def skeleton(chunks: Sequence[str]) -> tuple[str, tuple[str, ...]]:
    """The source of the next render() pass, and the data it refers to by placeholder.

    Code chunks are kept as they are; each run of data chunks becomes one placeholder expression. A `{`
    ending a code chunk would run into the placeholder's `{{` (`{{{`), so it is moved into the data.
    """
    parts: list[str] = []
    data: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            parts.append(f"{{{{ {PLACEHOLDER}[{len(data)}] }}}}")
            data.append("".join(pending))
            pending.clear()

    for chunk in chunks:
        if not isinstance(chunk, Code):
            pending.append(chunk)
            continue
        text = str.__str__(chunk)
        kept = text.rstrip("{")
        if kept:
            flush()
            parts.append(kept)
        if len(kept) < len(text):
            pending.append(text[len(kept) :])
    flush()
    return "".join(parts), tuple(data)
