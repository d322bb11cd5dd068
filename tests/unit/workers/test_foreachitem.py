"""ForEachItem's batching rules (rows, partitions, bytes) and the parser's expansion into Kestra's three steps."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.core.errors import TaskFailed
from orchestrator.core.parse import parse_flow
from workers.storagetasks import _size, split_file

LINES = [f"{i}\n".encode() for i in range(10)]


def _split(tmp_path: Path, batch: dict[str, object], lines: list[bytes] = LINES) -> list[list[bytes]]:
    source = tmp_path / "items.txt"
    source.write_bytes(b"".join(lines))
    return [cut.splitlines(keepends=True) for cut in split_file(source, batch)]


def test_rows_cut_fixed_size_batches_with_a_shorter_last_one(tmp_path: Path) -> None:
    assert [len(b) for b in _split(tmp_path, {"rows": 4})] == [4, 4, 2]


def test_partitions_deal_the_items_round_robin_as_kestra_does(tmp_path: Path) -> None:
    batches = _split(tmp_path, {"partitions": 3})
    assert [len(b) for b in batches] == [4, 3, 3]
    assert batches[0] == [b"0\n", b"3\n", b"6\n", b"9\n"]


def test_more_partitions_than_items_drops_the_empty_ones(tmp_path: Path) -> None:
    assert [len(b) for b in _split(tmp_path, {"partitions": 5}, LINES[:2])] == [1, 1]


def test_bytes_start_a_new_batch_once_one_holds_the_limit(tmp_path: Path) -> None:
    assert [len(b) for b in _split(tmp_path, {"bytes": "10B"}, [b"aaaa\n"] * 5)] == [2, 2, 1]
    # Kestra's StorageSplitTest: 12,288 lines of 21 bytes in 1KB batches make 251 files (49 lines each).
    lines = [f"{i:>20}\n".encode() for i in range(12288)]
    assert len(_split(tmp_path, {"bytes": "1KB"}, lines)) == 251


def test_an_empty_file_makes_no_batch(tmp_path: Path) -> None:
    assert _split(tmp_path, {"rows": 1}, []) == []


@pytest.mark.parametrize(("text", "expected"), [("10", 10), ("1KB", 1024), ("2 MB", 2 << 20), ("1gb", 1 << 30)])
def test_sizes_read_as_kestra_writes_them(text: str, expected: int) -> None:
    assert _size(text) == expected


@pytest.mark.parametrize("batch", [{"rows": 0}, {"partitions": 0}, {"bytes": "lots"}, {"bytes": "0KB"}])
def test_unusable_batch_settings_fail_without_retry(tmp_path: Path, batch: dict[str, object]) -> None:
    with pytest.raises(TaskFailed) as failure:
        _split(tmp_path, batch)
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
