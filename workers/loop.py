"""Kestra 2's Loop: decide its iterations from `values` (list, map, JSON text or storage URI).

The iterations then run exactly as a ForEach's do (the plan gives each value a lane of child task runs);
what differs is read here and in `orchestrator.loop_outputs`: map keys, one value per line of a file, and
values that are always text, as Kestra's `FlowableUtils.resolveValues` coalesces them.
"""

from __future__ import annotations

import json
from typing import Any

from orchestrator.core.decision import TaskRunDecision
from orchestrator.core.errors import TaskFailed
from workers.context import Decider, Decision, TaskContext

_STORAGE_SCHEME = "kestra://"


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _quoted_field_names(line: str) -> str:
    """ION text's bare field names (`{views:490}`) quoted, which makes a line of simple ION values JSON."""
    out: list[str] = []
    index, quote = 0, ""
    while index < len(line):
        char = line[index]
        if quote:
            out.append(char)
            if char == "\\" and index + 1 < len(line):
                out.append(line[index + 1])
                index += 1
            elif char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
            out.append(char)
        elif char.isalpha() or char in "_$":
            end = index
            while end < len(line) and (line[end].isalnum() or line[end] in "_$"):
                end += 1
            rest = line[end:].lstrip()
            word = line[index:end]
            out.append(f'"{word}"' if rest.startswith(":") else word)
            index = end
            continue
        else:
            out.append(char)
        index += 1
    return "".join(out)


def _line_value(line: str) -> str:
    """One line of an ION file as Kestra reads it: the value it holds, as text (`"a"` is `a`, a struct is
    its JSON)."""
    for text in (line, _quoted_field_names(line)):
        try:
            value = json.loads(text)  # ION text of strings, numbers, lists and structs is (nearly) JSON
        except ValueError:
            continue
        return _text(_checked(value))
    return line


def _lines(ctx: TaskContext, uri: str) -> list[str]:
    source = ctx.guard.stored_file(uri, "values")
    if not source.is_file():
        raise TaskFailed(f"values: no file at {uri}", retryable=False)
    return [_line_value(line) for line in source.read_text().splitlines() if line.strip()]


def _checked(value: Any) -> Any:
    if value is None:
        raise TaskFailed("Found a null value inside the iteration values", retryable=False)  # Kestra's message
    return value


def from_storage(rendered: Any) -> bool:
    """Whether `values` rendered to an internal-storage URI (Kestra's `fetchType: AUTO` then stores outputs)."""
    return isinstance(rendered, str) and rendered.strip().startswith(_STORAGE_SCHEME)


def resolve_values(ctx: TaskContext, rendered: Any) -> tuple[list[str], list[str] | None]:
    """The iteration values as text, and the keys when `values` was a map."""
    if isinstance(rendered, str):
        text = rendered.strip()
        if from_storage(text):
            return _lines(ctx, text), None
        try:
            rendered = json.loads(text)
        except ValueError as e:
            raise TaskFailed(
                f"values must be a list, a map, a JSON array or a storage URI, got {rendered!r}", retryable=False
            ) from e
    if isinstance(rendered, dict):
        return [_text(_checked(v)) for v in rendered.values()], [str(k) for k in rendered]
    if isinstance(rendered, list):
        return [_text(_checked(v)) for v in rendered], None
    raise TaskFailed(f"values must be a list, a map, a JSON array or a storage URI, got {rendered!r}", retryable=False)


def decide_loop(ctx: TaskContext) -> Decision:
    rendered = ctx.render(ctx.properties.get("values"))
    values, keys = resolve_values(ctx, rendered)
    # `kind` tells readers of the task runs (the API) that this one's descendants are Loop iterations.
    choice: TaskRunDecision = {"branch": "tasks", "values": values, "kind": "Loop"}
    if keys is not None:
        choice["keys"] = keys
    if from_storage(rendered):
        choice["fromStorage"] = True
    return Decision(choice, {"iterationCount": len(values)})


DECIDERS: dict[str, Decider] = {"Loop": decide_loop}
