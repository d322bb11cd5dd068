"""ForEachItem's batching rules (rows, partitions, bytes) and the parser's expansion into Kestra's three steps."""

from __future__ import annotations

import pytest

from orchestrator.core.errors import TaskFailed
from orchestrator.core.parse import parse_flow
from workers.foreachitem import _batches, _size

LINES = [f"{i}\n".encode() for i in range(10)]


def test_rows_cut_fixed_size_batches_with_a_shorter_last_one() -> None:
    assert [len(b) for b in _batches(LINES, {"rows": 4})] == [4, 4, 2]


def test_one_row_per_batch_is_kestras_default() -> None:
    assert len(_batches(LINES, {})) == 10


def test_partitions_spread_the_remainder_over_the_first_batches() -> None:
    batches = _batches(LINES, {"partitions": 3})
    assert [len(b) for b in batches] == [4, 3, 3]
    assert b"".join(b"".join(b) for b in batches) == b"".join(LINES)


def test_more_partitions_than_items_gives_one_item_each() -> None:
    assert [len(b) for b in _batches(LINES[:2], {"partitions": 5})] == [1, 1]


def test_bytes_fill_each_batch_up_to_the_limit() -> None:
    batches = _batches([b"aaaa\n"] * 5, {"bytes": "10B"})
    assert [len(b) for b in batches] == [2, 2, 1]


@pytest.mark.parametrize(("text", "expected"), [("10", 10), ("1KB", 1024), ("2 MB", 2 << 20), ("1gb", 1 << 30)])
def test_sizes_read_as_kestra_writes_them(text: str, expected: int) -> None:
    assert _size(text) == expected


@pytest.mark.parametrize("batch", [{"rows": 0}, {"partitions": 0}, {"bytes": "lots"}, {"bytes": "0KB"}])
def test_unusable_batch_settings_fail_without_retry(batch: dict[str, object]) -> None:
    with pytest.raises(TaskFailed) as failure:
        _batches(LINES, batch)
    assert failure.value.retryable is False


def test_the_parser_expands_a_for_each_item_into_split_items_merge() -> None:
    flow = parse_flow(
        """
id: f
namespace: tests
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEachItem
    items: "{{ inputs.file }}"
    batch: {rows: 4}
    namespace: tests
    flowId: child
    inputs: {items: "{{ taskrun.items }}"}
"""
    )
    each = flow.tasks[0]
    split, items, merge = each.branches["tasks"]
    assert [split.id, items.id, merge.id] == ["each_split", "each_items", "each_merge"]
    assert split.properties == {"items": "{{ inputs.file }}", "batch": {"rows": 4}}
    assert items.properties["flowId"] == "child" and "items" not in items.properties
    assert merge.type_name == "io.kestra.plugin.core.flow.ForEachItem$ForEachItemMergeOutputs"
    assert flow.task("each_merge") is merge
