"""Kestra's execution API around restart and delete, on the real stack, as Kestra's own Java tests assert them.

Each test names the Kestra test it follows (webserver ExecutionControllerTest, core ExecutionServiceTest at
commit 58c1ca2); its flow is Kestra's test flow (core/src/test/resources/flows/valids) moved into the test's
namespace.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.conftest import Stack

Deploy = Callable[[str], dict[str, Any]]


@pytest.fixture
def ns(unique_namespace: str) -> str:
    return unique_namespace


@pytest.fixture
def deploy(deploy_flow: Deploy) -> Deploy:
    return deploy_flow


RESTART_LAST_FAILED = """
id: restart_last_failed
namespace: {ns}
tasks:
- id: a
  type: io.kestra.plugin.core.log.Log
  message: "{{ task.id }}"
- id: b
  type: io.kestra.plugin.core.log.Log
  message: "{{ task.id }}"
- id: c
  type: io.kestra.plugin.core.log.Log
  message: "{{taskrun.attemptsCount == 1 ? 'ok' : ko}}"
- id: d
  type: io.kestra.plugin.core.log.Log
  message: "{{ task.id }}"
"""

MINIMAL = """
id: minimal
namespace: {ns}
labels:
  system.readOnly: "true"
tasks:
- id: date
  type: io.kestra.plugin.core.log.Log
  message: "{{taskrun.startDate}}"
"""

PAUSED = """
id: paused
namespace: {ns}
tasks:
  - id: pause
    type: io.kestra.plugin.core.flow.Pause
"""


def _states(history: list[dict[str, Any]]) -> list[str]:
    return [h["state"] for h in history]


def test_restart_answers_the_execution_as_the_restart_left_it(stack: Stack, deploy: Deploy, ns: str) -> None:
    """ExecutionControllerTest.restartFromLastFailed and ExecutionServiceTest.restartSimple."""
    deploy(RESTART_LAST_FAILED)
    first = stack.run_to_end(ns, "restart_last_failed")
    assert first["state"]["current"] == "FAILED" and len(first["taskRunList"]) == 3

    answer = stack.api.post(f"/executions/{first['id']}/restart")

    assert answer.status_code == 200, answer.text
    restarted = answer.json()
    assert restarted["id"] == first["id"] and restarted["parentId"] is None
    assert restarted["state"]["current"] == "RESTARTED"
    assert _states(restarted["state"]["histories"]) == ["CREATED", "RUNNING", "FAILED", "RESTARTED"]
    assert restarted["state"]["endDate"] is None
    assert len(restarted["taskRunList"]) == 3
    done = stack.wait_for_state(first["id"], {"SUCCESS", "FAILED", "WARNING"})
    assert done["state"]["current"] == "SUCCESS"
    assert [len(t["attempts"]) for t in done["taskRunList"]] == [1, 1, 2, 1]
    assert {t["state"]["current"] for t in done["taskRunList"]} == {"SUCCESS"}


def test_restarting_an_execution_without_a_failed_task_is_422(stack: Stack, deploy: Deploy, ns: str) -> None:
    """ExecutionControllerTest.restartWithNoFailure: 422 "No task found to restart", the execution unchanged."""
    deploy(MINIMAL)
    done = stack.run_to_end(ns, "minimal")
    assert done["state"]["current"] == "SUCCESS"

    answer = stack.api.post(f"/executions/{done['id']}/restart")

    assert answer.status_code == 422, answer.text
    assert "No task found to restart" in answer.json()["message"]
    after = stack.api.get(f"/executions/{done['id']}").json()
    assert after["state"] == done["state"]


def test_a_live_execution_still_cannot_be_restarted(stack: Stack, deploy: Deploy, ns: str) -> None:
    deploy(PAUSED)
    paused = stack.wait_for_state(stack.run(ns, "paused")["id"], {"PAUSED"})

    answer = stack.api.post(f"/executions/{paused['id']}/restart")

    assert answer.status_code == 409, answer.text
    stack.api.post(f"/executions/{paused['id']}/kill")


def test_delete_an_execution_then_it_is_gone(stack: Stack, deploy: Deploy, ns: str) -> None:
    """ExecutionControllerTest.delete: 204, then 404 for it and for an unknown id; its logs go too."""
    deploy(MINIMAL)
    done = stack.run_to_end(ns, "minimal")
    assert stack.api.get(f"/logs/{done['id']}").json()

    answer = stack.api.delete(f"/executions/{done['id']}")

    assert answer.status_code == 204, answer.text
    assert stack.api.get(f"/executions/{done['id']}").status_code == 404
    assert stack.api.get("/logs/search", params={"namespace": ns}).json()["total"] == 0
    assert stack.api.delete(f"/executions/{done['id']}").status_code == 404
    assert stack.api.delete("/executions/notfound").status_code == 404
    audit = stack.api.get("/audit", params={"action": "execution.delete"})
    assert audit.status_code == 200, audit.text
    assert done["id"] in audit.text  # the API-action trail names the deletion


def test_a_live_execution_is_not_deleted(stack: Stack, deploy: Deploy, ns: str) -> None:
    deploy(PAUSED)
    paused = stack.wait_for_state(stack.run(ns, "paused")["id"], {"PAUSED"})

    answer = stack.api.delete(f"/executions/{paused['id']}")

    assert answer.status_code == 400, answer.text
    assert "not ended" in answer.json()["message"]
    assert stack.api.get(f"/executions/{paused['id']}").json()["state"]["current"] == "PAUSED"
    stack.api.delete(f"/executions/{paused['id']}/kill")


def test_delete_by_ids_and_by_query(stack: Stack, deploy: Deploy, ns: str) -> None:
    """ExecutionControllerTest.deleteByIds / deleteByQuery: `{"count": 3}`; a missing id deletes nothing (400)."""
    deploy(MINIMAL)
    ids = [stack.run_to_end(ns, "minimal")["id"] for _ in range(5)]

    refused = stack.api.request("DELETE", "/executions/by-ids", json=[ids[0], "notfound"])
    assert refused.status_code == 400, refused.text
    assert "notfound" in refused.json()["message"]
    assert stack.api.get(f"/executions/{ids[0]}").status_code == 200

    by_ids = stack.api.request("DELETE", "/executions/by-ids", json=ids[:2])
    assert by_ids.status_code == 200, by_ids.text
    assert by_ids.json() == {"count": 2}

    by_query = stack.api.delete("/executions/by-query", params={"namespace": ns})
    assert by_query.status_code == 200, by_query.text
    assert by_query.json() == {"count": 3}
    assert stack.api.get("/executions/search", params={"namespace": ns}).json()["total"] == 0


PARALLEL_NESTED = """
id: parallel-nested
namespace: {ns}
tasks:
  - id: 1_par
    type: io.kestra.plugin.core.flow.Parallel
    tasks:
      - id: 1-1
        type: io.kestra.plugin.core.debug.Return
        format: "{{task.id}} > {{taskrun.startDate}}"
      - id: 1-2
        type: io.kestra.plugin.core.debug.Return
        format: "{{task.id}} > {{taskrun.id}}"
      - id: 1-3_par
        type: io.kestra.plugin.core.flow.Parallel
        tasks:
          - id: 1-3-1
            type: io.kestra.plugin.core.debug.Return
            format: "{{task.id}} > {{taskrun.id}}"
          - id: 1-3-2_par
            type: io.kestra.plugin.core.flow.Sequential
            tasks:
              - id: 1-3-2-1
                type: io.kestra.plugin.core.debug.Return
                format: "{{task.id}} > {{taskrun.startDate}}"
              - id: 1-3-2-2_end
                type: io.kestra.plugin.core.debug.Return
                format: "{{task.id}} > {{taskrun.id}}"
          - id: 1-3-3_end
            type: io.kestra.plugin.core.debug.Return
            format: "{{task.id}} > {{taskrun.id}}"
      - id: 1-4_end
        type: io.kestra.plugin.core.debug.Return
        format: "{{task.id}} > {{taskrun.startDate}}"
  - id: 2_end
    type: io.kestra.plugin.core.debug.Return
    format: "{{task.id}} > {{taskrun.startDate}}"
"""


def test_a_replay_inside_a_parallel_keeps_the_siblings_and_reruns_the_successors(
    stack: Stack, deploy: Deploy, ns: str
) -> None:
    """ExecutionServiceTest.replayParallel: of the 11 task runs, only the replayed one, its children and what
    follows the Parallels (2_end) run again; the Parallels' other children are kept as they ended."""
    deploy(PARALLEL_NESTED)
    first = stack.run_to_end(ns, "parallel-nested")
    assert first["state"]["current"] == "SUCCESS" and len(first["taskRunList"]) == 11
    chosen = next(t for t in first["taskRunList"] if t["taskId"] == "1-3-2_par")

    answer = stack.api.post(f"/executions/{first['id']}/replay", params={"taskRunId": chosen["id"]})

    assert answer.status_code == 200, answer.text
    replayed = stack.wait_for_state(answer.json()["id"])
    assert replayed["state"]["current"] == "SUCCESS" and len(replayed["taskRunList"]) == 11
    before = {t["taskId"]: t for t in first["taskRunList"]}
    after = {t["taskId"]: t for t in replayed["taskRunList"]}
    for kept in ("1-1", "1-2", "1-3-1", "1-3-3_end", "1-4_end"):  # copied: the outputs name the first run
        assert after[kept]["outputs"] == before[kept]["outputs"], kept
    for again in ("1-3-2-2_end", "1-3-2_par"):  # ran again, in the new execution
        assert after[again]["id"] != before[again]["id"], again
    assert after["1-3-2-2_end"]["outputs"]["value"] == f"1-3-2-2_end > {after['1-3-2-2_end']['id']}"
    assert after["2_end"]["state"]["histories"][0]["date"] > before["2_end"]["state"]["histories"][-1]["date"]
