"""Safe YAML loading: plain JSON-like values plus the source position of every field path.

Limits are enforced while composing, before any value is built: document size, nesting depth and
the node count after alias expansion (a billion-laughs document is refused after a few thousand
nodes, in milliseconds). Positions are keyed by field path (``tasks[1].then[0].type``) so that
validation errors found later can be reported at their 1-based line and column.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

import yaml
from pydantic import JsonValue
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.resolver import Resolver

try:
    from yaml._yaml import CParser

    _LIBYAML = True
except ImportError:  # a PyYAML built without libyaml
    _LIBYAML = False

from orchestrator.core.errors import FlowErrorDetail, FlowInvalid

__all__ = ["MAX_DEPTH", "MAX_DOCUMENT_BYTES", "MAX_NODES", "Position", "load_yaml", "load_yaml_value"]

MAX_DOCUMENT_BYTES = 1_048_576
MAX_DEPTH = 100  #: nested collections; far beyond real flows and well within Python's recursion limit
MAX_NODES = 250_000  #: YAML nodes after alias expansion; a 1 MiB document without aliases stays below


class Position(NamedTuple):
    """Where a field's value (and, for mapping entries, its key) starts; 1-based."""

    line: int
    column: int
    key_line: int
    key_column: int


class _Limit(Exception):
    def __init__(self, message: str, mark: yaml.Mark | None) -> None:
        super().__init__(message)
        self.mark = mark


class _Resolver(Resolver):
    """YAML 1.2 core-schema booleans: only true/false. Kestra reads flows with Jackson, for which
    `on`, `off`, `yes` and `no` are strings (a task may well be called `off`)."""


_BOOL = "tag:yaml.org,2002:bool"
_Resolver.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _BOOL]
    for first, resolvers in Resolver.yaml_implicit_resolvers.items()
}
_Resolver.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


class _Loader(Composer, SafeConstructor, _Resolver):
    """A safe composer that refuses deep nesting and alias expansion bombs while composing.

    Scanning and parsing are delegated to libyaml when PyYAML has it (about three times faster on
    large documents, which bounds the cost of a hostile upload), to PyYAML's pure-Python parser
    otherwise. Composition stays in Python so that the limits can be enforced node by node.
    """

    def __init__(self, stream: str) -> None:
        self._events: Any = CParser(stream) if _LIBYAML else yaml.SafeLoader(stream)
        Composer.__init__(self)
        SafeConstructor.__init__(self)
        _Resolver.__init__(self)
        self._depth = 0
        self._sizes: dict[int, int] = {}  # id(node) -> node count once aliases are expanded

    def check_event(self, *choices: Any) -> bool:
        return bool(self._events.check_event(*choices))

    def peek_event(self) -> Any:
        return self._events.peek_event()

    def get_event(self) -> Any:
        return self._events.get_event()

    def dispose(self) -> None:
        self._events.dispose()

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            target = self.anchors.get(event.anchor)
            if target is not None and id(target) not in self._sizes:
                raise _Limit("a YAML alias refers to the collection that contains it", event.start_mark)
        self._depth += 1
        if self._depth > MAX_DEPTH:
            mark = self.peek_event().start_mark
            raise _Limit(f"the document nests deeper than {MAX_DEPTH} levels", mark)
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if node is not None:
            self._measure(node)
        return node

    def _measure(self, node: yaml.Node) -> None:
        # Children are composed first, so their expanded sizes are known: one pass, no expansion.
        if id(node) in self._sizes:
            return
        size = 1
        if isinstance(node, yaml.SequenceNode):
            size += sum(self._sizes[id(child)] for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            size += sum(self._sizes[id(k)] + self._sizes[id(v)] for k, v in node.value)
        if size > MAX_NODES:
            raise _Limit(f"the document expands to more than {MAX_NODES} YAML nodes (alias bomb?)", node.start_mark)
        self._sizes[id(node)] = size


_SCALAR_TAGS = {f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null")}
_TIMESTAMP = "tag:yaml.org,2002:timestamp"


class _Plain:
    """Turns composed nodes into JSON-like values and records each field's position."""

    def __init__(self, loader: _Loader) -> None:
        self.loader = loader
        self.positions: dict[str, Position] = {}
        self.errors: list[FlowErrorDetail] = []

    def convert(self, node: yaml.Node, path: str, key_mark: yaml.Mark | None = None) -> JsonValue:
        mark = node.start_mark
        key = key_mark or mark
        self.positions[path] = Position(mark.line + 1, mark.column + 1, key.line + 1, key.column + 1)
        if isinstance(node, yaml.MappingNode) and node.tag == "tag:yaml.org,2002:map":
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode) and node.tag == "tag:yaml.org,2002:seq":
            return [self.convert(item, f"{path}[{i}]") for i, item in enumerate(node.value)]
        if isinstance(node, yaml.ScalarNode) and node.tag == _TIMESTAMP:
            return str(node.value)  # as Jackson reads it: the text, not a date object
        if isinstance(node, yaml.ScalarNode) and node.tag in _SCALAR_TAGS:
            value = self.loader.construct_object(node)
            if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
                return str(node.value)
            return value  # type: ignore[no-any-return]
        self._error(path, f"unsupported YAML tag '{node.tag}'", mark)
        return None

    def _mapping(self, node: yaml.MappingNode, path: str) -> JsonValue:
        result: dict[str, JsonValue] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                self._error(path, "mapping keys must be plain scalars", key_node.start_mark)
                continue
            key = str(key_node.value)  # keys as written: `1:` stays "1", as in Jackson
            child = f"{path}.{key}" if path else key
            if key in result:
                self._error(child, f"duplicate key '{key}'", key_node.start_mark)
            result[key] = self.convert(value_node, child, key_node.start_mark)
        return result

    def _error(self, path: str, message: str, mark: yaml.Mark) -> None:
        self.errors.append(FlowErrorDetail(path, message, mark.line + 1, mark.column + 1))


def _syntax_error(e: yaml.YAMLError, text: str) -> FlowErrorDetail:
    if isinstance(e, yaml.MarkedYAMLError):
        mark = e.problem_mark or e.context_mark
        problem = ": ".join(p for p in (e.context, e.problem) if p)
        line, column = (mark.line + 1, mark.column + 1) if mark else (None, None)
        return FlowErrorDetail("", f"invalid YAML: {problem}", line, column)
    if isinstance(e, yaml.reader.ReaderError):
        line = text.count("\n", 0, e.position) + 1
        return FlowErrorDetail("", f"invalid YAML: {e.reason}", line, None)
    return FlowErrorDetail("", f"invalid YAML: {e}")


def load_yaml(text: str, *, allow_empty: bool = False) -> tuple[JsonValue, dict[str, Position]]:
    """Compose YAML text under the limits; return its plain value and the position of every field path.

    Raise FlowInvalid (path ``""``) for an oversized, empty (unless allowed), malformed or bombed document.
    """
    # Characters never outnumber bytes, so the cheap test settles most documents.
    if len(text) > MAX_DOCUMENT_BYTES or len(text.encode("utf-8")) > MAX_DOCUMENT_BYTES:
        raise FlowInvalid([FlowErrorDetail("", f"the document is larger than {MAX_DOCUMENT_BYTES} bytes")])
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None and allow_empty:
            return None, {}
        if node is None:
            raise FlowInvalid([FlowErrorDetail("", "the document is empty", 1, 1)])
        plain = _Plain(loader)
        value = plain.convert(node, "")
    except _Limit as e:
        mark = e.mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (None, None)
        raise FlowInvalid([FlowErrorDetail("", str(e), line, column)]) from e
    except yaml.YAMLError as e:
        raise FlowInvalid([_syntax_error(e, text)]) from e
    finally:
        loader.dispose()
    if plain.errors:
        raise FlowInvalid(plain.errors)
    return value, plain.positions


def load_yaml_value(text: str) -> JsonValue:
    """Parse a YAML value (a YAML input, for instance) under the same limits; raise ValueError."""
    try:
        value, _ = load_yaml(text, allow_empty=True)
    except FlowInvalid as e:
        raise ValueError(f"expected a YAML document: {e.message}") from e
    return value
