"""Kestra's bulk execution actions on the real stack (server, worker): executions reach their end states.

Kestra's ExecutionControllerTest (webserver, 58c1ca2) has resumeByIds and replayByIds; restart and kill by
ids/query are ported from its controller, which its tests leave out. The routing, validation and RBAC of every
bulk route are in tests/integration/api/test_bulk_actions_api.py and test_rbac_matrix.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.e2e.conftest import Stack

PAUSES = """
id: pauses
namespace: {ns}
tasks:
  - id: pause
    type: io.kestra.plugin.core.flow.Pause
  - id: after
    type: io.kestra.plugin.core.debug.Return
    format: "resumed"
"""

FAILS_THEN_FIXED = """
id: fixable
namespace: {ns}
tasks:
  - id: step
    type: {step}
"""
FAIL = "io.kestra.plugin.core.execution.Fail"
FIXED = "io.kestra.plugin.core.log.Log\n    message: fixed"

SLEEPS = """
id: sleeps
namespace: {ns}
tasks:
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT1M
"""


def test_resume_by_ids_resumes_each_paused_execution_to_its_end(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(PAUSES)
    ids = [stack.run(unique_namespace, "pauses")["id"] for _ in range(2)]
    for execution_id in ids:
        stack.wait_for_state(execution_id, {"PAUSED"})

    refused = stack.api.post("/executions/resume/by-ids", json=[*ids, "no-such-execution"])
    assert refused.status_code == 400, refused.text
    assert refused.json()["invalids"] == [
        {"path": "execution", "message": "execution not found", "invalidValue": "no-such-execution"}
    ]
    assert {stack.api.get(f"/executions/{i}").json()["state"]["current"] for i in ids} == {"PAUSED"}

    answer = stack.api.post("/executions/resume/by-ids", json=ids)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"count": 2}
    for execution_id in ids:
        assert stack.wait_for_state(execution_id)["state"]["current"] == "SUCCESS"


def test_restart_then_replay_on_the_latest_revision_by_ids(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(FAILS_THEN_FIXED.replace("{step}", FAIL))
    failed = stack.run_to_end(unique_namespace, "fixable")
    assert failed["state"]["current"] == "FAILED"

    assert stack.api.post("/executions/restart/by-ids", json=[failed["id"]]).json() == {"count": 1}
    restarted = stack.wait_for_state(failed["id"], {"FAILED"}, timeout_s=30)
    assert "RESTARTED" in [h["state"] for h in restarted["state"]["histories"]]

    fixed = FAILS_THEN_FIXED.replace("{step}", FIXED).replace("{ns}", unique_namespace)
    updated = stack.api.put(
        f"/flows/{unique_namespace}/fixable", content=fixed, headers={"Content-Type": "application/x-yaml"}
    )
    assert updated.status_code == 200 and updated.json()["revision"] == 2, updated.text  # revision 2 fixes it
    answer = stack.api.post("/executions/replay/by-ids", params={"latestRevision": "true"}, json=[failed["id"]])
    assert answer.json() == {"count": 1}
    listed = stack.api.get("/executions/search", params={"namespace": unique_namespace, "size": 10}).json()
    replay = next(e for e in listed["results"] if e["id"] != failed["id"])
    assert replay["flowRevision"] == 2
    assert stack.wait_for_state(replay["id"])["state"]["current"] == "SUCCESS"


def test_kill_by_query_kills_the_running_executions_it_finds(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(SLEEPS)
    ids = [stack.run(unique_namespace, "sleeps")["id"] for _ in range(2)]
    for execution_id in ids:
        stack.wait_for_state(execution_id, {"RUNNING"})

    answer = stack.api.delete("/executions/kill/by-query", params={"filters[namespace][EQUALS]": unique_namespace})

    assert answer.status_code == 200, answer.text
    assert answer.json() == {"count": 2}
    for execution_id in ids:
        assert stack.wait_for_state(execution_id)["state"]["current"] == "KILLED"
