"""ForEach / EachSequential / EachParallel values as Kestra's FlowableUtils.resolveEachTasks reads them."""

from __future__ import annotations

import pytest

from orchestrator.core.errors import TaskFailed
from workers.control import each_values


def test_a_loop_runs_once_per_distinct_value_in_first_seen_order() -> None:
    values = each_values("x", [1, "a", 1, {"b": 1, "a": 2}, {"a": 2, "b": 1}, "a"])

    assert values == [1, "a", {"b": 1, "a": 2}]


def test_integers_of_a_yaml_list_become_text_so_1_and_quoted_1_are_one_value() -> None:
    assert each_values([1, "1", 2], [1, "1", 2]) == ["1", "2"]


def test_a_null_value_fails_the_loop_with_kestras_message() -> None:
    with pytest.raises(TaskFailed) as failure:
        each_values("x", [1, None, {"key": "my-key", "value": "my-value"}])

    assert failure.value.message == "Found '1' null values on Each, with values=[1, null, {key=my-key, value=my-value}]"
    assert failure.value.retryable is False


def test_values_that_are_no_list_fail() -> None:
    with pytest.raises(TaskFailed):
        each_values("x", "not json")
