"""Kestra's query conventions parsed into `orchestrator.store.queries` values: `filters[f][OP]=v`, legacy params, sort.

Both forms are honoured at once (kestrapy 2.0 sends `filters[...]`, the MCP server and older clients send
plain `namespace=`, `state=`, `labels=k:v`, ...). Every refusal names the query parameter at fault.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import QueryParams

from api.errors import QueryInvalid
from orchestrator.store.queries import Filter, Group, Op, Search, SortKey

_KEY = re.compile(r"^filters((?:\[[^\[\]]*\])+)$")
_SEGMENT = re.compile(r"\[([^\[\]]*)\]")
_MAX_SIZE = 1000


@dataclass(frozen=True)
class Fields:
    """What one search endpoint understands: filterable fields, sortable fields, and legacy plain params."""

    filters: frozenset[str]
    sorts: frozenset[str]
    #: plain query parameter -> (field, operator); repeated parameters become IN.
    legacy: Mapping[str, tuple[str, Op]]
    default_sort: tuple[SortKey, ...] = ()


def parse_labels(raw: Iterable[str], param: str = "labels") -> tuple[tuple[str, str], ...]:
    """`k:v` strings: the key ends at the first ':' (Kestra's rule); a missing ':' or key is refused."""
    labels = []
    for item in raw:
        key, sep, value = item.partition(":")
        if not sep or not key.strip():
            raise QueryInvalid(param, f"label '{item}' is not in the form key:value")
        labels.append((key.strip(), value))
    return tuple(labels)


def parse_search(query: QueryParams, fields: Fields, *, page: int, size: int, sort: list[str]) -> Search:
    """The whole search request; unknown fields, operators and sort keys are refused with their parameter."""
    if page < 1:
        raise QueryInvalid("page", "must be 1 or more")
    if not 1 <= size <= _MAX_SIZE:
        raise QueryInvalid("size", f"must be between 1 and {_MAX_SIZE}")
    items: list[Filter | Group] = []
    tree: dict[str, Any] = {}
    for key, value in query.multi_items():
        match = _KEY.match(key)
        if match is None:
            continue
        node = tree
        segments = _SEGMENT.findall(match.group(1))
        for segment in segments[:-1]:
            node = node.setdefault(segment, {})
            if not isinstance(node, dict):
                raise QueryInvalid(key, "conflicts with another filter parameter")
        existing = node.setdefault(segments[-1], [])
        if not isinstance(existing, list):
            raise QueryInvalid(key, "conflicts with another filter parameter")
        existing.append(value)
    if tree:
        items.append(_group(tree, fields, "filters", any_of=False))
    items.extend(_legacy(query, fields))
    return Search(
        where=Group(any_of=False, items=tuple(items)),
        sort=_sort(sort, fields) or fields.default_sort,
        page=page,
        size=size,
    )


def _group(tree: dict[str, Any], fields: Fields, where: str, *, any_of: bool) -> Group:
    items: list[Filter | Group] = []
    for name, sub in tree.items():
        path = f"{where}[{name}]"
        if name in ("or", "and"):
            if not isinstance(sub, dict):
                raise QueryInvalid(path, "expects indexed groups: filters[or][0][field][OP]=value")
            groups = [_group(s, fields, f"{path}[{i}]", any_of=False) for i, s in sub.items() if isinstance(s, dict)]
            items.append(Group(any_of=name == "or", items=tuple(groups)))
            continue
        if name not in fields.filters:
            raise QueryInvalid(path, f"unknown filter field; known: {', '.join(sorted(fields.filters))}")
        if not isinstance(sub, dict):
            raise QueryInvalid(path, "expects an operator: filters[field][EQUALS]=value")
        for op_name, value in sub.items():
            items.append(_filter(name, op_name, value, f"{path}[{op_name}]"))
    return Group(any_of=any_of, items=tuple(items))


def _filter(name: str, op_name: str, value: Any, path: str) -> Filter:
    try:
        op = Op(op_name.upper())
    except ValueError:
        raise QueryInvalid(path, f"unknown operator; known: {', '.join(o.value for o in Op)}") from None
    if name == "labels":
        if isinstance(value, dict):  # filters[labels][EQUALS][team]=ai
            pairs = tuple((k, v[-1] if isinstance(v, list) else str(v)) for k, v in value.items())
        else:  # filters[labels][EQUALS]=team:ai (some clients)
            pairs = parse_labels(_flat(value), path)
        return Filter(name, op, labels=pairs)
    if isinstance(value, dict):
        raise QueryInvalid(path, "takes one value, not a mapping")
    values = _flat(value)
    if op in (Op.IN, Op.NOT_IN):
        values = [v for item in values for v in item.split(",") if v]
    return Filter(name, op, values=tuple(values))


def _flat(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _legacy(query: QueryParams, fields: Fields) -> list[Filter]:
    found: list[Filter] = []
    for param, (name, op) in fields.legacy.items():
        values = [v for v in query.getlist(param) if v != ""]
        if not values:
            continue
        if name == "labels":
            found.append(Filter(name, Op.EQUALS, labels=parse_labels(values, param)))
        elif len(values) > 1 and op is Op.EQUALS:
            found.append(Filter(name, Op.IN, values=tuple(values)))
        else:
            found.append(Filter(name, op, values=tuple(values)))
    return found


def _sort(raw: list[str], fields: Fields) -> tuple[SortKey, ...]:
    keys = []
    for item in raw:
        for part in item.split(","):
            if not part:
                continue
            name, _, direction = part.partition(":")
            if name not in fields.sorts:
                raise QueryInvalid("sort", f"cannot sort on '{name}'; known: {', '.join(sorted(fields.sorts))}")
            if direction.lower() not in ("", "asc", "desc"):
                raise QueryInvalid("sort", f"direction of '{name}' must be asc or desc")
            keys.append(SortKey(name, descending=direction.lower() == "desc"))
    return tuple(keys)
