"""kv.Put's merge of a new value into a stored one, as Kestra's PutTest asserts it (core/kv/PutTest.java)."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.core.errors import TaskFailed
from orchestrator.core.kv_merge import merge_kv_value


def test_a_single_value_entry_replaces_a_string() -> None:
    """PutTest#shouldReplaceStringValue."""
    assert merge_kv_value("old-value", [{"value": "new-value"}]) == "new-value"


def test_keyed_entries_patch_a_json_value_with_dotted_paths() -> None:
    """PutTest#shouldMergeJsonFromEntryList."""
    stored = {"abc": 123, "nested": {"a": 1}}

    merged = merge_kv_value(stored, [{"key": "def", "value": 234}, {"key": "nested.b", "value": 2}])

    assert merged == {"abc": 123, "def": 234, "nested": {"a": 1, "b": 2}}
    assert stored == {"abc": 123, "nested": {"a": 1}}  # the stored value is not modified in place


def test_a_map_is_deep_merged() -> None:
    """PutTest#shouldMergeJsonFromMap."""
    merged = merge_kv_value({"abc": 123, "nested": {"a": 1}}, {"def": 234, "nested": {"b": 2}})

    assert merged == {"abc": 123, "def": 234, "nested": {"a": 1, "b": 2}}


def test_keyed_entries_on_a_missing_key_create_the_json() -> None:
    """PutTest#shouldCreateJsonOnMissingKeyByDefault."""
    merged = merge_kv_value(None, [{"key": "abc", "value": 123}, {"key": "nested.def", "value": 234}])

    assert merged == {"abc": 123, "nested": {"def": 234}}


@pytest.mark.parametrize(("stored", "new"), [("plain", {"a": 1}), ({"a": 1}, "text"), ({"a": 1}, [1, 2])])
def test_anything_else_replaces_the_stored_value(stored: Any, new: Any) -> None:
    assert merge_kv_value(stored, new) == new


@pytest.mark.parametrize(
    ("stored", "new", "message"),
    [
        (
            "plain-string",
            [{"key": "abc", "value": 123}],
            "Cannot apply keyed `value` updates to a non-JSON existing KV value.",
        ),
        (
            None,
            [{"value": 1}, {"value": 2}],
            "`value` entries without `key` can only be used as a single replacement item.",
        ),
        (
            None,
            [{"key": "a", "value": 1}, {"value": 2}],
            "`value` entries without `key` can only be used as a single replacement item.",
        ),
        (None, [{"key": "", "value": 1}], "Each keyed `value` entry must have a non-empty string `key`."),
        ({1: "x"}, {"a": 1}, "`existing value` map keys must be strings."),
    ],
)
def test_malformed_entries_fail_with_kestras_message(stored: Any, new: Any, message: str) -> None:
    """PutTest#shouldFailWhenApplyingKeyedUpdateOnNonJsonValue and Put's entry validation."""
    with pytest.raises(TaskFailed) as failure:
        merge_kv_value(stored, new)

    assert failure.value.message == message
    assert failure.value.retryable is False
