"""Loop's values as Kestra's FlowableUtils.resolveValues reads them: lists, maps and JSON text, as text."""

from __future__ import annotations

from typing import cast

import pytest

from orchestrator.core.errors import TaskFailed
from workers.context import TaskContext
from workers.loop import resolve_values

NO_STORAGE = cast(TaskContext, None)  # only a storage URI needs the task's context


def test_list_items_are_coalesced_to_text_and_objects_to_json() -> None:
    values, keys = resolve_values(NO_STORAGE, ["a", 1, {"id": 2}, [3], None])

    assert values == ["a", "1", '{"id":2}', "[3]", "null"]
    assert keys is None


def test_a_map_gives_its_values_and_their_keys_in_order() -> None:
    assert resolve_values(NO_STORAGE, {"dev": "http://dev", "prod": 2}) == (["http://dev", "2"], ["dev", "prod"])


def test_a_json_array_text_is_read_as_a_list() -> None:
    assert resolve_values(NO_STORAGE, '["x", 2]') == (["x", "2"], None)


@pytest.mark.parametrize("bad", ["not json", 42, '"a string"'])
def test_values_that_are_no_list_map_or_uri_fail_without_retry(bad: object) -> None:
    with pytest.raises(TaskFailed) as failure:
        resolve_values(NO_STORAGE, bad)

    assert failure.value.retryable is False
