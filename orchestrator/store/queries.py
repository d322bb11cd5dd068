"""Search requests as values: Kestra's filters (field, operator, value), and/or groups, sort keys, pages.

The API parses query strings into these; the store turns them into SQL. Nothing here does I/O.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Op(enum.StrEnum):
    """Kestra's `QueryFilter.Op` names."""

    EQUALS = "EQUALS"  #: equal (labels: every given key has the value)
    NOT_EQUALS = "NOT_EQUALS"  #: not equal
    GREATER_THAN = "GREATER_THAN"  #: dates and numbers
    LESS_THAN = "LESS_THAN"  #: dates and numbers
    GREATER_THAN_OR_EQUAL_TO = "GREATER_THAN_OR_EQUAL_TO"  #: dates and numbers
    LESS_THAN_OR_EQUAL_TO = "LESS_THAN_OR_EQUAL_TO"  #: dates and numbers
    IN = "IN"  #: one of a comma-separated list
    NOT_IN = "NOT_IN"  #: none of a comma-separated list
    STARTS_WITH = "STARTS_WITH"  #: text prefix
    ENDS_WITH = "ENDS_WITH"  #: text suffix
    CONTAINS = "CONTAINS"  #: text contains (case-insensitive)
    NOT_CONTAINS = "NOT_CONTAINS"  #: text does not contain
    IS_NULL = "IS_NULL"  #: no value
    IS_NOT_NULL = "IS_NOT_NULL"  #: any value
    REGEX = "REGEX"  #: POSIX regular expression
    PREFIX = "PREFIX"  #: namespace prefix: the namespace itself or any child (`a` matches `a` and `a.b`)


@dataclass(frozen=True)
class Filter:
    """One condition: `filters[<field>][<op>]=<value>`; labels carry a key → value mapping."""

    field: str
    op: Op
    values: tuple[str, ...] = ()  #: one value, or several for IN / NOT_IN
    labels: tuple[tuple[str, str], ...] = ()  #: for the `labels` field

    @property
    def value(self) -> str:
        return self.values[0] if self.values else ""


@dataclass(frozen=True)
class Group:
    """Conditions combined with AND or OR (`filters[or][0][...]`)."""

    any_of: bool  #: True for OR, False for AND
    items: tuple[Filter | Group, ...] = ()


@dataclass(frozen=True)
class SortKey:
    field: str
    descending: bool = False


@dataclass(frozen=True)
class Search:
    """What a search endpoint asks the store for."""

    where: Group = field(default_factory=lambda: Group(any_of=False))
    sort: tuple[SortKey, ...] = ()
    page: int = 1  #: 1-based, as in Kestra
    size: int = 10
    #: Namespace prefixes the caller may see; None means every namespace (RBAC narrows searches here).
    visible_prefixes: tuple[str, ...] | None = None

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.size


def namespace_in_prefix(namespace: str, prefix: str) -> bool:
    """`a.b` is inside prefix `a` (and `a.`), `ab` is not; the empty prefix holds every namespace."""
    base = prefix.rstrip(".")
    return not base or namespace == base or namespace.startswith(base + ".")
