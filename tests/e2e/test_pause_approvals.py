"""Approvals of a plain Pause: the approver role approves or rejects with a reason, sees the rendered description
and the run's inputs, and the `onResume` values land in the audit trail (Kestra's resume records them too)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from orchestrator.engine.accounts import Binding
from tests.harness.stack import Stack, secured_api_over

DEPLOY_GATE = """
id: deploy-gate
namespace: {ns}
inputs:
  - id: version
    type: STRING
tasks:
  - id: gate
    type: io.kestra.plugin.core.flow.Pause
    description: "Deploy {{ inputs.version }} to production?"
    onResume:
      - id: changeTicket
        type: STRING
      - id: token
        type: SECRET
        required: false
  - id: after
    type: io.kestra.plugin.core.debug.Return
    format: "{{ outputs.gate.onResume.changeTicket }}"
errors:
  - id: on-reject
    type: io.kestra.plugin.core.log.Log
    message: rejected
"""

ADMIN = ("gate-admin@chorus.test", "gate-admin-password")
APPROVER = ("ada-approver", "ada-password-1")
VIEWER = ("vic-viewer", "vic-password-1")


@pytest.fixture(scope="module")
def secured_api(stack: Stack) -> Iterator[TestClient]:
    with secured_api_over(
        stack, ADMIN, {APPROVER: [Binding("approver", "tests")], VIEWER: [Binding("viewer", "tests")]}
    ) as client:
        yield client


def _paused(stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], namespace: str) -> str:
    deploy_flow(DEPLOY_GATE)
    created = stack.run(namespace, "deploy-gate", version="1.2.3")
    execution = stack.wait_for_state(created["id"], {"PAUSED", "FAILED", "SUCCESS"})
    assert execution["state"]["current"] == "PAUSED", execution
    return str(created["id"])


def _events(stack: Stack, execution_id: str) -> list[dict[str, Any]]:
    return list(stack.api.get(f"/executions/{execution_id}/audit").json()["events"])


def _url(execution_id: str, action: str) -> str:
    return f"/api/v1/main/executions/{execution_id}/actions/{action}"


def test_an_approver_sees_the_rendered_request_and_approves_with_a_reason_and_a_change_ticket(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str, secured_api: TestClient
) -> None:
    execution_id = _paused(stack, deploy_flow, unique_namespace)

    asked = secured_api.get(f"/api/v1/main/executions/{execution_id}/approvals", auth=VIEWER)
    assert asked.status_code == 200, asked.text
    [gate] = asked.json()["taskRuns"]
    assert (gate["taskId"], gate["kind"]) == ("gate", "pause")
    assert gate["description"] == "Deploy 1.2.3 to production?"
    assert [i["id"] for i in gate["onResume"]] == ["changeTicket", "token"]
    body = {"reason": "CAB approved", "inputs": {"changeTicket": "CHG-42", "token": "s3cr3t"}}
    assert secured_api.post(_url(execution_id, "approve"), json=body, auth=VIEWER).status_code == 403
    answer = secured_api.post(_url(execution_id, "approve"), json=body, auth=APPROVER)
    assert answer.status_code == 200, answer.text
    execution = stack.wait_for_state(execution_id)

    assert execution["state"]["current"] == "SUCCESS", execution
    [after] = [t for t in execution["taskRunList"] if t["taskId"] == "after"]
    assert after["outputs"] == {"value": "CHG-42"}
    [approved] = [e for e in _events(stack, execution_id) if e["action"] == "execution.approved"]
    assert approved["actor"].startswith(f"user:{APPROVER[0]}")
    assert approved["payload"]["reason"] == "CAB approved"
    assert approved["payload"]["onResume"] == {"changeTicket": "CHG-42", "token": "******"}
    assert "s3cr3t" not in str(_events(stack, execution_id))


def test_an_approver_rejects_a_pause_with_a_reason_and_the_execution_fails_through_its_errors_branch(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str, secured_api: TestClient
) -> None:
    execution_id = _paused(stack, deploy_flow, unique_namespace)
    assert secured_api.delete(_url(execution_id, "kill"), auth=APPROVER).status_code == 403  # kill stays an operator's

    answer = secured_api.post(_url(execution_id, "reject"), json={"reason": "freeze week"}, auth=APPROVER)
    assert answer.status_code == 200, answer.text
    execution = stack.wait_for_state(execution_id)

    assert execution["state"]["current"] == "FAILED", execution
    by_task = {t["taskId"]: t["state"]["current"] for t in execution["taskRunList"]}
    assert by_task == {"gate": "FAILED", "on-reject": "SUCCESS"}
    events = _events(stack, execution_id)
    [rejected] = [e for e in events if e["action"] == "execution.rejected"]
    assert rejected["payload"]["reason"] == "freeze week"
    [failed] = [e for e in events if e["action"] == "task_run.failed" and e["payload"].get("task_id") == "gate"]
    assert failed["payload"]["reason"] == f"rejected by {rejected['actor']}: freeze week"


def test_a_decision_is_refused_with_a_clear_answer_when_nothing_waits_or_the_body_is_wrong(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str, secured_api: TestClient
) -> None:
    execution_id = _paused(stack, deploy_flow, unique_namespace)

    unknown_field = secured_api.post(_url(execution_id, "approve"), json={"because": "x"}, auth=APPROVER)
    assert unknown_field.status_code == 422 and "because" in unknown_field.text
    missing = secured_api.post(_url(execution_id, "approve"), json={"reason": "ok"}, auth=APPROVER)
    assert missing.status_code == 422 and "changeTicket" in missing.text
    wrong_run = secured_api.post(_url(execution_id, "reject"), json={"taskRunId": "nope"}, auth=APPROVER)
    assert wrong_run.status_code == 422 and "taskRunId" in wrong_run.text
    assert secured_api.post(_url(execution_id, "reject"), auth=APPROVER).status_code == 200
    stack.wait_for_state(execution_id)
    again = secured_api.post(_url(execution_id, "approve"), json={"inputs": {"changeTicket": "x"}}, auth=APPROVER)
    assert again.status_code == 409 and "not paused" in again.text
    assert secured_api.get("/api/v1/main/executions/nope/approvals", auth=APPROVER).status_code == 404


def test_kestras_resume_records_the_on_resume_values_in_the_audit_trail(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    execution_id = _paused(stack, deploy_flow, unique_namespace)

    resumed = stack.api.post(f"/executions/{execution_id}/resume", files={"changeTicket": (None, "CHG-7")})
    assert resumed.status_code == 204, resumed.text
    assert stack.wait_for_state(execution_id)["state"]["current"] == "SUCCESS"

    [event] = [e for e in _events(stack, execution_id) if e["payload"].get("onResume") is not None]
    assert event["action"] == "task_run.running"
    assert event["payload"]["onResume"] == {"changeTicket": "CHG-7", "token": None}
