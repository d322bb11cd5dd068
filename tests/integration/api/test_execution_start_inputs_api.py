"""Required inputs: checked when a start sends inputs (Kestra's API), not when it sends none at all (Kestra's
engine starting a flow without inputs, as its tests and triggers do)."""

from __future__ import annotations

from fastapi.testclient import TestClient

YAML = {"Content-Type": "application/x-yaml"}
FLOW = """
id: needs-param
namespace: io.kestra.tests
inputs:
  - id: param
    type: STRING
  - id: other
    type: STRING
    defaults: fallback
tasks:
  - id: t
    type: io.kestra.plugin.core.log.Log
    message: hi
"""
START = "/api/v1/main/executions/io.kestra.tests/needs-param"


def test_a_start_with_no_inputs_at_all_may_omit_a_required_input(client: TestClient) -> None:
    assert client.post("/api/v1/main/flows", content=FLOW, headers=YAML).status_code == 200

    response = client.post(START)

    assert response.status_code == 200, response.text
    assert response.json()["inputs"] == {"param": None, "other": "fallback"}


def test_a_start_with_inputs_must_give_every_required_one(client: TestClient) -> None:
    client.post("/api/v1/main/flows", content=FLOW, headers=YAML)

    response = client.post(START, files={"other": (None, "x")})

    assert response.status_code == 422
    assert "Invalid input for `param`, missing required input, but received `null`" in response.text
