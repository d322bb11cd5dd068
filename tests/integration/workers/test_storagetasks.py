"""storage.* tasks on internal storage, with the outputs and edge cases of Kestra's own storage tests."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.core.states import State
from orchestrator.engine import Engine, TaskOutcome
from tests.integration.workers.conftest import Runner, one_task_flow
from workers.storage import local_path

Put = Callable[[str, str], str]


@pytest.fixture
def put(worker_engine: Engine) -> Put:
    """Write a file into internal storage, among the namespace files of the flows' namespace (`tests.workers`, a
    task may only use files of its namespace or of executions it may read); return its kestra:/// URI."""

    def write(name: str, text: str) -> str:
        path = worker_engine.settings.data_dir / "storage" / "tests" / "workers" / "_files" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return f"kestra:///tests/workers/_files/{name}"

    return write


def _storage(run_task: Runner, kind: str, props: str) -> TaskOutcome:
    return run_task(one_task_flow(f"    type: io.kestra.plugin.core.storage.{kind}\n{props}"), "t")


def _read(engine: Engine, uri: str) -> str:
    return local_path(engine.settings.data_dir, uri).read_text()


def test_write_stores_the_rendered_content_with_its_extension(run_task: Runner, worker_engine: Engine) -> None:
    outcome = _storage(run_task, "Write", "    content: \"{{ 'Hello' }} World\"\n    extension: .txt")

    assert outcome.state is State.SUCCESS, outcome.error
    assert outcome.outputs is not None and outcome.outputs["uri"].endswith(".txt")
    assert _read(worker_engine, outcome.outputs["uri"]) == "Hello World"


def test_concat_joins_files_with_the_separator_from_a_list_or_json(
    run_task: Runner, worker_engine: Engine, put: Put
) -> None:
    uri = put("concat/a.yml", "a: 1")
    for files in (f"[{uri}, {uri}]", json.dumps(json.dumps([uri, uri]))):
        outcome = _storage(run_task, "Concat", f'    files: {files}\n    separator: "\\n"\n    extension: .yml')
        assert outcome.outputs is not None, outcome.error
        assert outcome.outputs["uri"].endswith(".yml")
        assert _read(worker_engine, outcome.outputs["uri"]) == "a: 1\na: 1\n"


def test_split_by_rows_keeps_every_line_in_order(run_task: Runner, worker_engine: Engine, put: Put) -> None:
    lines = [f"{i:>20}" for i in range(1000)]
    uri = put("split/get.yml", "\n".join(lines) + "\n")

    outcome = _storage(run_task, "Split", f"    from: {uri}\n    rows: 10")

    assert outcome.outputs is not None, outcome.error
    assert len(outcome.outputs["uris"]) == 100
    assert outcome.outputs["uris"][0].endswith(".yml")
    assert "".join(_read(worker_engine, u) for u in outcome.outputs["uris"]) == "\n".join(lines) + "\n"


def test_split_without_rows_bytes_or_partitions_fails(run_task: Runner, put: Put) -> None:
    outcome = _storage(run_task, "Split", f"    from: {put('split/none.txt', 'a')}")

    assert outcome.state is State.FAILED
    assert outcome.error == "Invalid configuration with no size, count, nor rows"


def test_reverse_writes_the_lines_last_first(run_task: Runner, worker_engine: Engine, put: Put) -> None:
    uri = put("reverse/r.txt", "a\nb\nc\n")

    outcome = _storage(run_task, "Reverse", f"    from: {uri}")

    assert outcome.outputs is not None, outcome.error
    assert _read(worker_engine, outcome.outputs["uri"]) == "c\nb\na\n"


def test_size_and_delete_of_a_file_and_of_a_missing_one(run_task: Runner, put: Put) -> None:
    uri = put("delete/d.txt", "12345")

    assert _storage(run_task, "Size", f"    uri: {uri}").outputs == {"size": 5}
    assert _storage(run_task, "Delete", f"    uri: {uri}").outputs == {"uri": uri, "deleted": True}
    assert _storage(run_task, "Delete", f"    uri: {uri}").outputs == {"uri": uri, "deleted": False}
    missing = _storage(run_task, "Delete", f"    uri: {uri}\n    errorOnMissing: true")
    assert missing.state is State.FAILED
    assert missing.error == f"Unable to find file '{uri}'"
    assert _storage(run_task, "Size", f"    uri: {uri}").state is State.FAILED


_ITEMS = '{"key":"k1","value":1}\n{key:"k2",value:2}\n{"key":"k3","value":3}\n{"key":"k4","value":4}\n'
_INVALID = '{"key":"k1","value":1}\n{"key":"k2","value":"dummy"}\n{"key":"k3","value":3}\n{"key":"k4","value":4}\n'


@pytest.mark.parametrize(("filter_type", "kept"), [("INCLUDE", ["k2", "k4"]), ("EXCLUDE", ["k1", "k3"])])
def test_filter_items_keeps_or_drops_the_matching_items(
    run_task: Runner, worker_engine: Engine, put: Put, filter_type: str, kept: list[str]
) -> None:
    uri = put("filter/items.ion", _ITEMS)

    outcome = _storage(
        run_task,
        "FilterItems",
        f'    from: {uri}\n    filterCondition: " {{{{ value % 2 == 0 }}}} "\n    filterType: {filter_type}',
    )

    assert outcome.outputs is not None, outcome.error
    assert (outcome.outputs["processedItemsTotal"], outcome.outputs["droppedItemsTotal"]) == (4, 2)
    assert [_key(line) for line in _read(worker_engine, outcome.outputs["uri"]).splitlines()] == kept


def _key(line: str) -> str:
    return str(json.loads(line.replace("{key:", '{"key":').replace(",value:", ',"value":'))["key"])


@pytest.mark.parametrize(("behavior", "kept", "dropped"), [("INCLUDE", ["k2", "k4"], 2), ("EXCLUDE", ["k4"], 3)])
def test_filter_items_on_an_item_the_condition_fails_on(
    run_task: Runner, worker_engine: Engine, put: Put, behavior: str, kept: list[str], dropped: int
) -> None:
    uri = put("filter/invalid.ion", _INVALID)

    outcome = _storage(
        run_task,
        "FilterItems",
        f'    from: {uri}\n    filterCondition: "{{{{ value % 2 == 0 }}}}"\n    errorOrNullBehavior: {behavior}',
    )

    assert outcome.outputs is not None, outcome.error
    assert outcome.outputs["droppedItemsTotal"] == dropped
    assert [_key(line) for line in _read(worker_engine, outcome.outputs["uri"]).splitlines()] == kept


def test_filter_items_fails_on_an_item_the_condition_fails_on_by_default(run_task: Runner, put: Put) -> None:
    uri = put("filter/invalid-fail.ion", _INVALID)

    outcome = _storage(run_task, "FilterItems", f'    from: {uri}\n    filterCondition: "{{{{ value % 2 == 0 }}}}"')

    assert outcome.state is State.FAILED


def test_deduplicate_items_keeps_the_last_item_of_each_key(run_task: Runner, worker_engine: Engine, put: Put) -> None:
    items = [("k1", 1), ("k2", 2), ("k1", 3), ("k3", 4), ("k2", 5), ("k1", 6), ("k3", 7), ("k3", 8)]
    uri = put("dedup/items.ion", "".join(json.dumps({"key": k, "v": v}) + "\n" for k, v in items))

    outcome = _storage(run_task, "DeduplicateItems", f'    from: {uri}\n    expr: " {{{{ key }}}} "')

    assert outcome.outputs is not None, outcome.error
    assert (outcome.outputs["numKeys"], outcome.outputs["droppedItemsTotal"]) == (3, 5)
    assert outcome.outputs["processedItemsTotal"] == 8
    kept = [json.loads(line)["v"] for line in _read(worker_engine, outcome.outputs["uri"]).splitlines()]
    assert kept == [5, 6, 8]


@pytest.mark.parametrize("kind", ["PurgeCurrentExecutionFiles", "PurgeInternalStorage"])
def test_purge_current_execution_files_removes_this_executions_files(
    run_task: Runner, worker_engine: Engine, kind: str
) -> None:
    written = _storage(run_task, "Write", "    content: x")
    assert written.outputs is not None
    path: Path = local_path(worker_engine.settings.data_dir, written.outputs["uri"])
    execution_id = written.outputs["uri"].split("/executions/")[1].split("/")[0]
    flow = one_task_flow(f"    type: io.kestra.plugin.core.storage.{kind}")

    purged = run_task(flow, "t", execution_id=execution_id)

    assert purged.outputs == {"uris": [written.outputs["uri"]]}
    assert not path.exists()
