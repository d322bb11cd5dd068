"""Kestra test flows of the hidden slice b2 (tests/fixtures/kestra_more/manifest-b2.json), in what its runner
leaves unchecked: storage URIs shaped as Kestra's (slugged flow and task ids), correlation ids through two
Subflow levels, and the restart of a failed WorkingDirectory, which runs all its tasks again."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.e2e.conftest import Stack

FLOWS = Path(__file__).parents[1] / "fixtures" / "kestra_more" / "flows" / "io.kestra.tests"

Deploy = Callable[[str], dict[str, Any]]


def _deploy(deploy_flow: Deploy, *names: str) -> None:
    """Kestra's flows, moved into the test's own namespace."""
    for name in names:
        deploy_flow((FLOWS / f"{name}.yaml").read_text().replace("io.kestra.tests", "{ns}"))


def _children(stack: Stack, execution_id: str) -> list[dict[str, Any]]:
    found = stack.api.get("/executions/search", params={"triggerExecutionId": execution_id, "size": 100}).json()
    return found["results"]  # type: ignore[no-any-return]


def _runs(execution: dict[str, Any], task_id: str) -> list[dict[str, Any]]:
    return [t for t in execution["taskRunList"] if t["taskId"] == task_id]


def test_for_each_item_batches_live_at_kestras_slugged_task_path(
    stack: Stack, deploy_flow: Deploy, unique_namespace: str
) -> None:
    """ForEachItemCaseTest.java:65-107: a batch URI matches .../for-each-item/executions/.*/tasks/each-split/.*.txt."""
    _deploy(deploy_flow, "for-each-item-subflow", "for-each-item")
    lines = "".join(str(i).rjust(20) + "\n" for i in range(102)).encode()
    response = stack.api.post(
        f"/executions/{unique_namespace}/for-each-item",
        files={"file": ("file.txt", lines, "text/plain"), "batch": (None, "40")},
    )
    assert response.status_code == 200, response.text
    execution = stack.wait_for_state(response.json()["id"], timeout_s=60)

    assert execution["state"]["current"] == "SUCCESS"
    assert execution["taskRunList"][2]["outputs"]["numberOfBatches"] == 3
    children = _children(stack, execution["id"])
    assert len(children) == 3
    ns_path = unique_namespace.replace(".", "/")
    pattern = rf"kestra:///{ns_path}/for-each-item/executions/{execution['id']}/tasks/each-split/[^/]+/\d+\.txt"
    for child in children:
        assert child["state"]["current"] == "SUCCESS"
        assert re.fullmatch(pattern, child["inputs"]["items"]), child["inputs"]["items"]
        assert {"key": "system.correlationId", "value": execution["id"]} in child["labels"]


CHILD = """
id: reader
namespace: {ns}
inputs:
  - id: items
    type: STRING
tasks:
  - id: count
    type: io.kestra.plugin.core.debug.Return
    format: "{{ read(inputs.items) | trim | split('\\n') | length }}"
"""

PARENT = """
id: Batch_Parent
namespace: {ns}
inputs:
  - id: file
    type: FILE
tasks:
  - id: each_batch
    type: io.kestra.plugin.core.flow.ForEachItem
    items: "{{ inputs.file }}"
    batch:
      rows: 2
    namespace: {ns}
    flowId: reader
    inputs:
      items: "{{ taskrun.items }}"
"""


def test_a_subflow_reads_its_parents_batch_at_the_slugged_path_and_nobody_else_does(
    stack: Stack, deploy_flow: Deploy, unique_namespace: str
) -> None:
    deploy_flow(CHILD)
    deploy_flow(PARENT)
    response = stack.api.post(
        f"/executions/{unique_namespace}/Batch_Parent", files={"file": ("f.txt", b"a\nb\nc\n", "text/plain")}
    )
    assert response.status_code == 200, response.text
    parent = stack.wait_for_state(response.json()["id"], timeout_s=60)

    assert parent["state"]["current"] == "SUCCESS"
    children = sorted(_children(stack, parent["id"]), key=lambda c: c["inputs"]["items"])
    assert [c["taskRunList"][0]["outputs"]["value"] for c in children] == ["2", "1"]
    assert "/batch-parent/executions/" in children[0]["inputs"]["items"]
    assert "/tasks/each-batch-split/" in children[0]["inputs"]["items"]

    # Started on its own, the same child may not read another execution's batch.
    stranger = stack.run_to_end(unique_namespace, "reader", items=children[0]["inputs"]["items"])
    assert stranger["state"]["current"] == "FAILED"
    logs = stack.api.get(f"/logs/{stranger['id']}").json()
    assert any("does not belong to this execution" in line["message"] for line in logs)


def test_the_correlation_id_reaches_the_grand_child(stack: Stack, deploy_flow: Deploy, unique_namespace: str) -> None:
    """CorrelationIdTest.java:37-73."""
    _deploy(deploy_flow, "subflow-grand-child", "subflow-child", "subflow-parent")

    parent = stack.run_to_end(unique_namespace, "subflow-parent")

    assert parent["state"]["current"] == "SUCCESS"
    (child,) = _children(stack, parent["id"])
    (grand_child,) = _children(stack, child["id"])
    for execution in (child, grand_child):
        assert execution["state"]["current"] == "SUCCESS"
        correlation = [lab["value"] for lab in execution["labels"] if lab["key"] == "system.correlationId"]
        assert correlation == [parent["id"]]
    logs = stack.api.get(f"/logs/{grand_child['id']}").json()
    assert any(line["message"] == f"My grandparent is {parent['id']}" for line in logs)


def test_restarting_a_failed_working_directory_runs_it_again_as_a_whole(
    stack: Stack, deploy_flow: Deploy, unique_namespace: str
) -> None:
    """WorkingDirectoryTest.java:126-133 and ExecutionServiceTest.java:136-147 (restartDynamic)."""
    _deploy(deploy_flow, "working-directory")
    failed = stack.run_to_end(unique_namespace, "working-directory", failed="true")
    assert failed["state"]["current"] == "FAILED" and len(failed["taskRunList"]) == 3

    answer = stack.api.post(f"/executions/{failed['id']}/restart")

    assert answer.status_code == 200, answer.text
    restarted = answer.json()
    assert restarted["state"]["current"] == "RESTARTED"
    assert [h["state"] for h in restarted["state"]["histories"]] == ["CREATED", "RUNNING", "FAILED", "RESTARTED"]
    assert restarted["taskRunList"][0]["taskId"] == "worker"
    assert restarted["taskRunList"][0]["state"]["current"] == "RESTARTED"
    # The WorkingDirectory's tasks and its errors branch are gone: they run again from the start.
    assert [t["taskId"] for t in restarted["taskRunList"]] == ["worker"]

    again = stack.wait_for_state(failed["id"], {"FAILED", "SUCCESS"}, timeout_s=30)
    assert again["state"]["current"] == "FAILED"
    assert [t["taskId"] for t in again["taskRunList"]] == ["worker", "first", "error-t1"]
    assert len(again["taskRunList"][0]["attempts"]) == 2  # the WorkingDirectory's second attempt
    assert len(_runs(again, "first")[0]["attempts"]) == 1  # a fresh task run, not a retry of the old one


GATED = """
id: gated
namespace: {ns}
tasks:
  - id: wd
    type: io.kestra.plugin.core.flow.WorkingDirectory
    tasks:
      - id: write
        type: io.kestra.plugin.core.storage.LocalFiles
        inputs:
          out/note.txt: "{{ taskrun.id }}"
      - id: gate
        type: io.kestra.plugin.core.execution.Fail
        condition: "{{ kv('open', errorOnMissing=false) is null }}"
      - id: collect
        type: io.kestra.plugin.core.storage.LocalFiles
        outputs:
          - out/*
"""


def test_a_restarted_working_directory_writes_again_the_files_its_later_tasks_read(
    stack: Stack, deploy_flow: Deploy, unique_namespace: str
) -> None:
    deploy_flow(GATED)
    failed = stack.run_to_end(unique_namespace, "gated")
    assert failed["state"]["current"] == "FAILED"
    assert _runs(failed, "gate")[0]["state"]["current"] == "FAILED"
    put = stack.api.put(
        f"/namespaces/{unique_namespace}/kv/open", content=b'"yes"', headers={"Content-Type": "application/json"}
    )
    assert put.status_code < 300, put.text

    assert stack.api.post(f"/executions/{failed['id']}/restart").status_code == 200
    done = stack.wait_for_state(failed["id"], {"FAILED", "SUCCESS"}, timeout_s=30)

    assert done["state"]["current"] == "SUCCESS", done
    # `write` ran again in the new directory, so `collect` finds its file (a skipped `write` would leave none).
    assert list(_runs(done, "collect")[0]["outputs"]["uris"]) == ["out/note.txt"]
    assert len(_runs(done, "write")[0]["attempts"]) == 1  # a new task run, not a retry of the first one
