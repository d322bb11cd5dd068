"""Loop's values as Kestra's FlowableUtils.resolveValues reads them: lists, maps and JSON text, as text."""

from __future__ import annotations

from typing import cast

import pytest

from orchestrator.core.errors import TaskFailed
from workers.context import TaskContext
from workers.loop import _line_value, resolve_values

NO_STORAGE = cast(TaskContext, None)  # only a storage URI needs the task's context


def test_list_items_are_coalesced_to_text_and_objects_to_json() -> None:
    values, keys = resolve_values(NO_STORAGE, ["a", 1, {"id": 2}, [3]])

    assert values == ["a", "1", '{"id":2}', "[3]"]
    assert keys is None


@pytest.mark.parametrize("values", [["a", None], {"k": None}, "[1, null]"])
def test_a_null_value_fails_the_loop_with_kestras_message(values: object) -> None:
    with pytest.raises(TaskFailed) as failure:
        resolve_values(NO_STORAGE, values)

    assert "Found a null value inside the iteration values" in failure.value.message


@pytest.mark.parametrize(
    ("line", "value"),
    [
        ('"a"', "a"),
        ("12", "12"),
        ('{"id": 1}', '{"id":1}'),
        ("plain", "plain"),
        (
            '{date:"2025-12-03T12:00:00Z",title:"Michel-Ange: x",views:490}',
            '{"date":"2025-12-03T12:00:00Z","title":"Michel-Ange: x","views":490}',
        ),
    ],
)
def test_a_storage_file_line_is_read_as_the_ion_value_it_holds(line: str, value: str) -> None:
    assert _line_value(line) == value


def test_a_map_gives_its_values_and_their_keys_in_order() -> None:
    assert resolve_values(NO_STORAGE, {"dev": "http://dev", "prod": 2}) == (["http://dev", "2"], ["dev", "prod"])


def test_a_json_array_text_is_read_as_a_list() -> None:
    assert resolve_values(NO_STORAGE, '["x", 2]') == (["x", "2"], None)


@pytest.mark.parametrize("bad", ["not json", 42, '"a string"'])
def test_values_that_are_no_list_map_or_uri_fail_without_retry(bad: object) -> None:
    with pytest.raises(TaskFailed) as failure:
        resolve_values(NO_STORAGE, bad)

    assert failure.value.retryable is False
