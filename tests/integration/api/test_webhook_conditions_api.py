"""A Webhook trigger's `conditions` decide whether a call starts an execution (Kestra answers 204 when not);
a flow named like a legacy action path (`state`, `labels`, `change-status`, `replay-with-inputs`) can still be
executed."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

YAML = {"Content-Type": "application/x-yaml"}

WEBHOOK_WITH_CONDITION = """
id: webhook-with-condition
namespace: io.kestra.tests
tasks:
  - id: out
    type: io.kestra.plugin.core.debug.Return
    format: "{{ trigger | json }}"
triggers:
  - id: webhook
    type: io.kestra.plugin.core.trigger.Webhook
    key: webhookKey
    conditions:
      - type: io.kestra.plugin.core.condition.ExpressionCondition
        expression: "{{trigger.body.hello == 'world'}}"
"""
HOOK = "/api/v1/executions/webhook/io.kestra.tests/webhook-with-condition/webhookKey"


def test_a_webhook_whose_condition_holds_starts_an_execution(client: TestClient) -> None:
    assert client.post("/api/v1/main/flows", content=WEBHOOK_WITH_CONDITION, headers=YAML).status_code == 200

    response = client.post(HOOK, json={"hello": "world"})

    assert response.status_code == 200, response.text
    assert response.json()["flowId"] == "webhook-with-condition"


def test_a_webhook_whose_condition_fails_answers_204_and_starts_nothing(client: TestClient) -> None:
    client.post("/api/v1/main/flows", content=WEBHOOK_WITH_CONDITION, headers=YAML)

    response = client.post(HOOK, json={"hello": "webhook"})

    assert response.status_code == 204
    assert response.content == b""
    found = client.get("/api/v1/main/executions/search", params={"flowId": "webhook-with-condition"}).json()
    assert found["total"] == 0


def _api_audit_actions(client: TestClient) -> list[tuple[str, str]]:
    with client.app.state.engine.sessions() as session:  # type: ignore[attr-defined]
        rows = session.execute(
            text("SELECT action, payload->>'outcome' FROM audit_events WHERE chain_key LIKE 'api:%' ORDER BY id")
        )
        return [(str(action), str(outcome)) for action, outcome in rows]


def test_a_fire_is_audited_by_its_execution_alone_and_a_wrong_key_is_recorded_as_failed(client: TestClient) -> None:
    client.post("/api/v1/main/flows", content=WEBHOOK_WITH_CONDITION, headers=YAML)
    before = _api_audit_actions(client)

    started = client.post(HOOK, json={"hello": "world"})
    refused = client.post(HOOK, json={"hello": "webhook"})
    wrong = client.post(HOOK.replace("webhookKey", "guess"), json={"hello": "world"})

    assert (started.status_code, refused.status_code, wrong.status_code) == (200, 204, 404)
    # The started execution's own chain records who fired it; the call adds nothing to the API's chain (one
    # shared row every fire used to lock), a refused call wrote nothing, a wrong key is kept as a failed attempt.
    assert _api_audit_actions(client)[len(before) :] == [("execution.webhook", "failed")]
    chain = client.get(f"/api/v1/main/executions/{started.json()['id']}/audit").json()
    assert chain["verified"]
    created = next(e for e in chain["events"] if e["action"] == "execution.created")
    assert created["actor"].startswith("trigger:webhook@")


@pytest.mark.parametrize("flow_id", ["state", "labels", "change-status", "replay-with-inputs"])
def test_a_flow_named_like_an_action_path_can_be_executed(client: TestClient, flow_id: str) -> None:
    source = f"id: {flow_id}\nnamespace: io.kestra.tests\ntasks:\n  - id: t\n    type: io.kestra.plugin.core.log.Log\n"
    source += "    message: hi\n"
    assert client.post("/api/v1/main/flows", content=source, headers=YAML).status_code == 200

    response = client.post(f"/api/v1/main/executions/io.kestra.tests/{flow_id}")

    assert response.status_code == 200, response.text
    assert response.json()["flowId"] == flow_id
