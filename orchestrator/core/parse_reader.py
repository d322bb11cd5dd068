"""The base of the flow reader: positions, error collection, pydantic model errors, scalar fields, plugin defaults.

`DocumentReader` holds what every part of a flow document's reading shares: the YAML positions, the
errors and warnings found so far, and what later cross-field checks need (task paths, subflow calls,
task properties). The readers of inputs, tasks and triggers extend it; `parse` assembles them.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, JsonValue, ValidationError

from orchestrator.core import tasktypes
from orchestrator.core.errors import FlowErrorDetail
from orchestrator.core.flow import PluginDefault
from orchestrator.core.yamldoc import Position

M = TypeVar("M", bound=BaseModel)

#: Kestra's task and trigger id pattern (TaskInterface, AbstractTrigger), applied to the whole value.
TASK_ID = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_-]*")

_PARENT = re.compile(r"(\.[^.\[\]]*|\[\d+\])$")


class DocumentReader:
    """Walks a flow document, collecting every error with its position; subclasses read its sections."""

    def __init__(self, positions: dict[str, Position], source: list[str] | None = None) -> None:
        self.positions = positions
        self.source = source or []
        self.errors: list[FlowErrorDetail] = []
        self.warnings: list[FlowErrorDetail] = []
        self.task_paths: dict[str, str] = {}  # task id -> path of its first definition
        self.plugin_defaults: list[tuple[str, PluginDefault]] = []
        self.subflows: list[tuple[str, JsonValue, JsonValue]] = []  # (path, namespace, flowId)
        self.task_properties: list[tuple[str, JsonValue]] = []

    # -- errors --------------------------------------------------------------------------------

    def error(self, path: str, message: str, *, at_key: bool = False, suggestion: str | None = None) -> None:
        """Record an error at `path`, positioned at its value (or its key, with `at_key`)."""
        line, column = self.position_of(path, at_key)
        self.errors.append(FlowErrorDetail(path, message, line, column, suggestion))

    def position_of(self, path: str, at_key: bool) -> tuple[int | None, int | None]:
        """The line and column of `path`, or of its nearest ancestor the YAML positions know."""
        probe = path
        while True:
            pos = self.positions.get(probe)
            if pos is not None:
                exact = probe == path
                return (pos.key_line, pos.key_column) if at_key and exact else (pos.line, pos.column)
            if not probe:
                return None, None
            parent = _PARENT.sub("", probe)
            probe = "" if parent == probe else parent  # a top-level key's parent is the document

    def unknown_keys(self, data: Mapping[str, Any], known: Iterable[str], path: str, what: str) -> None:
        """Report each key of `data` not in `known`, suggesting the closest known one."""
        allowed = list(known)
        for key in data:
            if key not in allowed:
                hint = difflib.get_close_matches(key, allowed, n=1)
                self.error(
                    join_path(path, key),
                    f"unknown property '{key}' {what}",
                    at_key=True,
                    suggestion=first_or_none(hint),
                )

    def model(self, cls: type[M], data: object, path: str, what: str) -> M | None:
        """Validate a mapping with a pydantic model, reporting its errors at their YAML positions."""
        if not isinstance(data, dict):
            self.error(path, f"expected a mapping, got {kind_of(data)}")
            return None
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            known = [f.alias or name for name, f in cls.model_fields.items()]
            for err in e.errors(include_url=False):
                self._model_error(err, path, what, known)
            return None

    def _model_error(self, err: Any, path: str, what: str, known: list[str]) -> None:
        loc = err["loc"]
        where = path + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc)
        kind = err["type"]
        if kind == "missing":
            self.error(where, f"missing required property '{loc[-1]}' {what}")
        elif kind == "extra_forbidden":
            hint = difflib.get_close_matches(str(loc[-1]), known, n=1) if len(loc) == 1 else []
            self.error(where, f"unknown property '{loc[-1]}' {what}", at_key=True, suggestion=first_or_none(hint))
        else:
            message = str(err["msg"]).removeprefix("Value error, ")
            if kind != "value_error" and not isinstance(err.get("input"), dict | list):
                message += f" (got {show(err.get('input'))})"
            self.error(where, message)

    # -- scalar fields -------------------------------------------------------------------------

    def identifier(
        self, data: Mapping[str, JsonValue], key: str, path: str, pattern: re.Pattern[str], size: int, allowed: str
    ) -> str | None:
        """The id-like text at `key`, or None after reporting it missing or not matching `pattern`."""
        value = data.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)  # Jackson reads `id: 1` as the text "1"
        where = join_path(path, key)
        if value is None:
            self.error(where, f"missing required property '{key}'")
        elif not isinstance(value, str) or not pattern.fullmatch(value) or len(value) > size:
            self.error(where, f"invalid {key} {show(value)}: at most {size} {allowed}, starting with a letter or digit")
        else:
            return value
        return None

    def text(self, data: Mapping[str, JsonValue], key: str, path: str) -> str | None:
        """The text at `key` (None when absent), reporting any other kind of value."""
        value = data.get(key)
        if value is None or isinstance(value, str):
            return value
        self.error(join_path(path, key), f"expected text, got {kind_of(value)}")
        return None

    def flag(self, data: Mapping[str, JsonValue], key: str, path: str, *, default: bool) -> bool:
        """The boolean at `key` (`default` when absent), reporting any other kind of value."""
        value = data.get(key, default)
        if isinstance(value, bool):
            return value
        self.error(join_path(path, key), f"expected true or false, got {show(value)}")
        return default

    def mapping(self, data: Mapping[str, JsonValue], key: str, path: str) -> dict[str, JsonValue] | None:
        """The mapping at `key` (None when absent), reporting any other kind of value."""
        value = data.get(key)
        if value is None or isinstance(value, dict):
            return value
        self.error(join_path(path, key), f"expected a mapping, got {kind_of(value)}")
        return None

    # -- plugin defaults -----------------------------------------------------------------------

    def defaults(self, data: Mapping[str, JsonValue]) -> tuple[PluginDefault, ...]:
        """Read `pluginDefaults` (and its old name `taskDefaults`), keeping each with its path."""
        for key in ("pluginDefaults", "taskDefaults"):  # taskDefaults is Kestra's deprecated name
            value = data.get(key)
            if value is not None and not isinstance(value, list):
                self.error(key, f"expected a list, got {kind_of(value)}")
            elif isinstance(value, list):
                for i, item in enumerate(value):
                    default = self.model(PluginDefault, item, f"{key}[{i}]", "in a plugin default")
                    if default is not None:
                        self.plugin_defaults.append((f"{key}[{i}]", default))
        return tuple(d for _, d in self.plugin_defaults)

    def with_defaults(self, type_name: str, raw: dict[str, JsonValue], path: str) -> dict[str, JsonValue]:
        """A task or trigger mapping with the plugin defaults for its type applied under its own keys."""
        defaults = [default for _, default in self.plugin_defaults]
        merged, sources = tasktypes.apply_plugin_defaults(type_name, raw, defaults)
        for key, index in sources.items():
            # An error in an injected value is reported where the default supplied it.
            source = self.positions.get(f"{self.plugin_defaults[index][0]}.values.{key}")
            if source is not None:
                self.positions[join_path(path, key)] = source
        return merged


def join_path(path: str, key: str) -> str:
    """The field path of `key` under `path` (a top-level key when `path` is empty)."""
    return f"{path}.{key}" if path else key


def article(word: str) -> str:
    """The English article for a type name ("an" AIAgent, "a" Log)."""
    return "an" if word[:1] in "AEIOU" else "a"


def first_or_none(items: list[str]) -> str | None:
    """The first of a list of suggestions, or None when there is none."""
    return items[0] if items else None


def kind_of(value: object) -> str:
    """What a YAML value is, in words, for an error message ("a mapping", "text", ...)."""
    return {dict: "a mapping", list: "a list", str: "text", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )


def show(value: object) -> str:
    """A value as an error message quotes it, cut at 60 characters."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def find_cycle(graph: Mapping[str, list[str]]) -> list[str] | None:
    """Return one dependency cycle (``[a, b, a]``) in the graph, or None.

    Iterative, so a long dependency chain in a hostile document cannot exhaust the call stack.
    """
    done: set[str] = set()
    for start in graph:
        if start in done:
            continue
        path, on_path = [start], {start}
        pending = [iter(graph[start])]
        while pending:
            dep = next(pending[-1], None)
            if dep is None:
                on_path.discard(path[-1])
                done.add(path.pop())
                pending.pop()
            elif dep in on_path:
                return [*path[path.index(dep) :], dep]
            elif dep in graph and dep not in done:
                path.append(dep)
                on_path.add(dep)
                pending.append(iter(graph[dep]))
    return None
