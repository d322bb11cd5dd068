"""Kestra's query conventions: `filters[field][OP]=value`, groups, legacy params and sort keys."""

from __future__ import annotations

import pytest
from starlette.datastructures import QueryParams

from api.errors import QueryInvalid
from api.filters import Fields, parse_search
from orchestrator.store.queries import Filter, Group, Op, SortKey

FIELDS = Fields(
    filters=frozenset({"namespace", "state", "labels", "flowId"}),
    sorts=frozenset({"id", "state.startDate"}),
    legacy={"namespace": ("namespace", Op.PREFIX), "state": ("state", Op.EQUALS), "labels": ("labels", Op.EQUALS)},
    default_sort=(SortKey("id"),),
)


def parse(query: str, **kwargs: object) -> Group:
    return parse_search(QueryParams(query), FIELDS, page=1, size=10, sort=[]).where


def test_a_bracketed_filter_becomes_a_field_operator_value() -> None:
    where = parse("filters[namespace][EQUALS]=company.team")

    assert where.items == (Group(any_of=False, items=(Filter("namespace", Op.EQUALS, ("company.team",)),)),)


def test_in_splits_its_value_on_commas() -> None:
    (group,) = parse("filters[state][IN]=SUCCESS,FAILED").items

    assert group.items == (Filter("state", Op.IN, ("SUCCESS", "FAILED")),)


def test_a_label_filter_carries_its_key_and_value() -> None:
    (group,) = parse("filters[labels][EQUALS][team]=ai").items

    assert group.items == (Filter("labels", Op.EQUALS, labels=(("team", "ai"),)),)


def test_or_groups_are_combined_with_or() -> None:
    (group,) = parse("filters[or][0][namespace][EQUALS]=a&filters[or][1][namespace][EQUALS]=b").items

    (any_of,) = group.items
    assert isinstance(any_of, Group) and any_of.any_of
    assert [g.items for g in any_of.items if isinstance(g, Group)] == [
        (Filter("namespace", Op.EQUALS, ("a",)),),
        (Filter("namespace", Op.EQUALS, ("b",)),),
    ]


def test_legacy_plain_parameters_are_honoured_next_to_filters() -> None:
    where = parse("namespace=company&state=SUCCESS&state=FAILED&labels=team:ai")

    assert where.items == (
        Filter("namespace", Op.PREFIX, ("company",)),
        Filter("state", Op.IN, ("SUCCESS", "FAILED")),
        Filter("labels", Op.EQUALS, labels=(("team", "ai"),)),
    )


def test_an_unknown_field_is_refused_naming_the_parameter() -> None:
    with pytest.raises(QueryInvalid) as caught:
        parse("filters[colour][EQUALS]=red")

    assert caught.value.path == "filters[colour]"


def test_an_unknown_operator_is_refused_naming_the_parameter() -> None:
    with pytest.raises(QueryInvalid) as caught:
        parse("filters[state][SOUNDS_LIKE]=x")

    assert caught.value.path == "filters[state][SOUNDS_LIKE]"


def test_a_label_without_a_colon_is_refused() -> None:
    with pytest.raises(QueryInvalid) as caught:
        parse("labels=team")

    assert caught.value.path == "labels"


def test_sort_keys_keep_their_direction_and_default_when_absent() -> None:
    explicit = parse_search(QueryParams(""), FIELDS, page=1, size=10, sort=["state.startDate:desc", "id:asc"])
    default = parse_search(QueryParams(""), FIELDS, page=1, size=10, sort=[])

    assert explicit.sort == (SortKey("state.startDate", descending=True), SortKey("id"))
    assert default.sort == (SortKey("id"),)


@pytest.mark.parametrize(("page", "size", "path"), [(0, 10, "page"), (1, 0, "size"), (1, 1001, "size")])
def test_page_and_size_are_bounded(page: int, size: int, path: str) -> None:
    with pytest.raises(QueryInvalid) as caught:
        parse_search(QueryParams(""), FIELDS, page=page, size=size, sort=[])

    assert caught.value.path == path


def test_an_unknown_sort_field_is_refused() -> None:
    with pytest.raises(QueryInvalid) as caught:
        parse_search(QueryParams(""), FIELDS, page=1, size=10, sort=["colour:asc"])

    assert caught.value.path == "sort"
