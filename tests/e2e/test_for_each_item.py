"""ForEachItem on the real stack: a file of items cut into batches, one subflow execution per batch."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from tests.e2e.conftest import Stack

CHILD = """
id: batch-child
namespace: {ns}
inputs:
  - id: items
    type: STRING
tasks:
  - id: count
    type: io.kestra.plugin.core.debug.Return
    format: "{{ read(inputs.items) | trim | split('\\n') | length }}"
  - id: maybe-fail
    type: io.kestra.plugin.core.execution.Fail
    condition: "{{ read(inputs.items) contains 'poison' }}"
outputs:
  - id: lines
    type: INT
    value: "{{ outputs.count.value }}"
"""

PARENT = """
id: batches
namespace: {ns}
inputs:
  - id: file
    type: FILE
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEachItem
    items: "{{ inputs.file }}"
    batch:
      {batch}
    namespace: {ns}
    flowId: batch-child
    inputs:
      items: "{{ taskrun.items }}"
  - id: after
    type: io.kestra.plugin.core.debug.Return
    format: "{{ outputs.each_items.numberOfBatches }} batches"
"""


def _run(stack: Stack, namespace: str, lines: list[str]) -> dict[str, Any]:
    body = "".join(f"{line}\n" for line in lines).encode()
    response = stack.api.post(f"/executions/{namespace}/batches", files={"file": ("items.txt", body, "text/plain")})
    assert response.status_code == 200, response.text
    return stack.wait_for_state(response.json()["id"], timeout_s=60)


def _children(stack: Stack, execution_id: str) -> list[dict[str, Any]]:
    found = stack.api.get("/executions/search", params={"triggerExecutionId": execution_id, "size": 100}).json()
    return found["results"]  # type: ignore[no-any-return]


def test_each_batch_runs_as_a_subflow_and_their_outputs_are_merged_in_order(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(CHILD)
    deploy_flow(PARENT.replace("{batch}", "rows: 3"))

    execution = _run(stack, unique_namespace, [f"item {i}" for i in range(10)])

    assert execution["state"]["current"] == "SUCCESS"
    runs = execution["taskRunList"]
    assert [r["taskId"] for r in runs] == ["each", "each_split", "each_items", "each_merge", "after"]
    items = runs[2]["outputs"]
    assert items["numberOfBatches"] == 4
    assert items["iterations"] == {"CREATED": 0, "RUNNING": 0, "SUCCESS": 4}
    assert runs[4]["outputs"] == {"value": "4 batches"}
    children = _children(stack, execution["id"])
    assert len(children) == 4 and {c["state"]["current"] for c in children} == {"SUCCESS"}
    merged = stack.api.get(f"/executions/{execution['id']}/file", params={"path": runs[3]["outputs"]["subflowOutputs"]})
    assert merged.status_code == 200, merged.text
    assert [json.loads(line) for line in merged.text.splitlines()] == [
        {"lines": 3},
        {"lines": 3},
        {"lines": 3},
        {"lines": 1},
    ]


def test_partitions_split_the_items_evenly(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(CHILD)
    deploy_flow(PARENT.replace("{batch}", "partitions: 3"))

    execution = _run(stack, unique_namespace, [f"item {i}" for i in range(7)])

    assert execution["state"]["current"] == "SUCCESS"
    assert execution["taskRunList"][2]["outputs"]["numberOfBatches"] == 3


def test_a_failed_batch_fails_the_step_and_stops_the_flow_but_every_batch_runs(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(CHILD)
    deploy_flow(PARENT.replace("{batch}", "rows: 2"))

    execution = _run(stack, unique_namespace, ["a", "b", "poison", "c", "d"])

    assert execution["state"]["current"] == "FAILED"
    runs = {r["taskId"]: r for r in execution["taskRunList"]}
    assert runs["each_items"]["state"]["current"] == "FAILED"
    assert runs["each_items"]["outputs"]["iterations"] == {"CREATED": 0, "RUNNING": 0, "SUCCESS": 2, "FAILED": 1}
    assert "each_merge" not in runs and "after" not in runs
    assert sorted(c["state"]["current"] for c in _children(stack, execution["id"])) == ["FAILED", "SUCCESS", "SUCCESS"]


def test_a_missing_items_file_fails_the_split_with_a_clear_message(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(CHILD)
    deploy_flow(
        PARENT.replace("{batch}", "rows: 2").replace(
            '"{{ inputs.file }}"', f'"kestra:///{unique_namespace.replace(".", "/")}/batches/nothing.txt"'
        )
    )

    execution = _run(stack, unique_namespace, ["a"])

    assert execution["state"]["current"] == "FAILED"
    split = next(r for r in execution["taskRunList"] if r["taskId"] == "each_split")
    logs = stack.api.get(f"/logs/{execution['id']}").json()
    assert split["state"]["current"] == "FAILED"
    # A URI that is no execution's file is refused before the disk is asked (issue 16: no existence oracle).
    assert any("items: kestra:///" in m and "is not a file of an execution" in m for m in (x["message"] for x in logs))


def test_a_subflow_cannot_read_another_executions_files(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(CHILD)
    deploy_flow(PARENT.replace("{batch}", "rows: 5"))
    first = _run(stack, unique_namespace, ["secret line"])
    batch_file = first["taskRunList"][1]["outputs"]["splits"]

    stranger = stack.run(unique_namespace, "batch-child", items=batch_file)
    ended = stack.wait_for_state(stranger["id"])

    assert ended["state"]["current"] == "FAILED"
    logs = stack.api.get(f"/logs/{stranger['id']}").json()
    assert any("does not belong to this execution" in line["message"] for line in logs)


def test_execution_files_download_only_from_their_own_execution(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(CHILD)
    deploy_flow(PARENT.replace("{batch}", "rows: 5"))
    first = _run(stack, unique_namespace, ["one"])
    second = _run(stack, unique_namespace, ["two"])
    splits = first["taskRunList"][1]["outputs"]["splits"]

    own = stack.api.get(f"/executions/{first['id']}/file", params={"path": splits})
    foreign = stack.api.get(f"/executions/{second['id']}/file", params={"path": splits})
    missing = stack.api.get(f"/executions/{first['id']}/file", params={"path": splits + ".nope"})
    traversal = stack.api.get(f"/executions/{first['id']}/file", params={"path": "kestra:///../../etc/passwd"})

    assert own.status_code == 200 and own.text.startswith("kestra:///")
    assert foreign.status_code == 422 and "is not a file of execution" in foreign.text
    assert missing.status_code == 404
    assert traversal.status_code == 422


NO_WAIT = """
id: no-wait
namespace: {ns}
inputs:
  - id: file
    type: FILE
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEachItem
    items: "{{ inputs.file }}"
    batch:
      rows: 4
    namespace: {ns}
    flowId: batch-child
    wait: false
    inputs:
      items: "{{ taskrun.items }}"
"""


def test_an_empty_items_file_starts_no_subflow_and_succeeds(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    """ForEachItemCaseTest.forEachItemEmptyItems: 4 task runs, SUCCESS, no outputs on the _items step."""
    deploy_flow(CHILD)
    deploy_flow(NO_WAIT.replace("no-wait", "batches").replace("    wait: false\n", ""))

    execution = _run(stack, unique_namespace, [])

    assert execution["state"]["current"] == "SUCCESS"
    assert len(execution["taskRunList"]) == 4
    assert execution["taskRunList"][2]["outputs"] is None
    assert _children(stack, execution["id"]) == []


def test_without_wait_every_batch_counts_as_success_once_started(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    """ForEachItemCaseTest.forEachItemNoWait: iterations hold no CREATED, RUNNING 0 and SUCCESS per batch."""
    deploy_flow(CHILD)
    deploy_flow(NO_WAIT)
    body = "".join(f"item {i}\n" for i in range(10)).encode()

    response = stack.api.post(f"/executions/{unique_namespace}/no-wait", files={"file": ("i.txt", body, "text/plain")})
    execution = stack.wait_for_state(response.json()["id"], timeout_s=60)

    assert execution["state"]["current"] == "SUCCESS"
    items = execution["taskRunList"][2]["outputs"]
    assert items == {"numberOfBatches": 3, "iterations": {"RUNNING": 0, "SUCCESS": 3}}
