"""Kestra's own test flows in the scenarios its conformance runner cannot drive: resume with inputs and a file,
replay from a task run, and the Resume task resuming another execution. Expectations are those of the
manifest (tests/fixtures/conformance/manifest.json), which cites Kestra's Java tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.e2e.conftest import Stack

FLOWS = Path(__file__).parents[1] / "fixtures" / "kestra_flows" / "io.kestra.tests"


def _deploy(deploy_flow: Callable[[str], dict[str, Any]], *names: str) -> None:
    """Kestra's flows, moved into the test's own namespace (the conformance test deploys the originals)."""
    for name in names:
        deploy_flow((FLOWS / f"{name}.yaml").read_text().replace("io.kestra.tests", "{ns}"))


def _paused(stack: Stack, namespace: str, flow_id: str) -> dict[str, Any]:
    execution_id = stack.run(namespace, flow_id)["id"]
    return stack.wait_for_state(execution_id, {"PAUSED", "FAILED", "SUCCESS"})


def test_pause_on_resume_takes_typed_inputs_and_a_file(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    """PauseTest.java:232-284 and ExecutionControllerTest.java:913-945."""
    _deploy(deploy_flow, "pause_on_resume")
    paused = _paused(stack, unique_namespace, "pause_on_resume")
    assert paused["state"]["current"] == "PAUSED"
    assert [r["state"]["current"] for r in paused["taskRunList"]] == ["PAUSED"]
    resume = f"/executions/{paused['id']}/resume"

    refused = stack.api.post(resume, files={"unrelated": (None, "x")})
    accepted = stack.api.post(
        resume, files={"asked": (None, "restarted"), "data": ("data.txt", paused["id"].encode(), "text/plain")}
    )

    assert refused.status_code == 422
    assert "Invalid input for `asked`, missing required input, but received `null`" in refused.text
    assert accepted.status_code in (200, 204), accepted.text
    done = stack.wait_for_state(paused["id"])
    assert done["state"]["current"] == "SUCCESS"
    values = next(r for r in done["taskRunList"] if r["taskId"] == "last")["outputs"]["values"]
    assert values["asked"] == "restarted" and values["data"].startswith("kestra://")
    content = stack.api.get(f"/executions/{paused['id']}/file", params={"path": values["data"]})
    assert content.status_code == 200 and content.text == paused["id"]


def test_restart_each_replayed_from_its_last_task(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    """RestartCaseTest.java:152-182 and ExecutionControllerTest.java:464-495."""
    _deploy(deploy_flow, "restart-each")
    first = stack.wait_for_state(stack.run(unique_namespace, "restart-each", failed="NONE")["id"])
    assert first["state"]["current"] == "SUCCESS" and len(first["taskRunList"]) == 20
    end = next(r for r in first["taskRunList"] if r["taskId"] == "2_end")

    replay = stack.api.post(f"/executions/{first['id']}/replay", params={"taskRunId": end["id"]})

    assert replay.status_code == 200, replay.text
    replayed = stack.wait_for_state(replay.json()["id"])
    assert replayed["state"]["current"] == "SUCCESS"
    assert replayed["parentId"] == first["id"] and len(replayed["taskRunList"]) == 20
    assert [r["state"]["current"] for r in replayed["taskRunList"]].count("SUCCESS") == 20


def test_the_resume_task_resumes_another_paused_execution(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    """ResumeTest.java:28-43: the paused execution ends within 5 s of the Resume task's success."""
    _deploy(deploy_flow, "pause", "resume-execution")
    paused = _paused(stack, unique_namespace, "pause")
    assert paused["state"]["current"] == "PAUSED"

    resumer = stack.run(unique_namespace, "resume-execution", executionId=paused["id"])

    assert stack.wait_for_state(resumer["id"])["state"]["current"] == "SUCCESS"
    assert stack.wait_for_state(paused["id"], timeout_s=5)["state"]["current"] == "SUCCESS"
