"""A Webhook trigger's `conditions` decide whether a call starts an execution (Kestra answers 204 when not);
a flow named like a legacy action path (`state`, `labels`, `change-status`, `replay-with-inputs`) can still be
executed."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

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


@pytest.mark.parametrize("flow_id", ["state", "labels", "change-status", "replay-with-inputs"])
def test_a_flow_named_like_an_action_path_can_be_executed(client: TestClient, flow_id: str) -> None:
    source = f"id: {flow_id}\nnamespace: io.kestra.tests\ntasks:\n  - id: t\n    type: io.kestra.plugin.core.log.Log\n"
    source += "    message: hi\n"
    assert client.post("/api/v1/main/flows", content=source, headers=YAML).status_code == 200

    response = client.post(f"/api/v1/main/executions/io.kestra.tests/{flow_id}")

    assert response.status_code == 200, response.text
    assert response.json()["flowId"] == flow_id
