"""A flow naming another namespace literally is refused by create and reported by validate, with its line,
unless that namespace grants the flow's (CHORUS_NAMESPACE_ACCESS)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.integration.api.conftest import AppFactory

CALLER = """\
id: caller
namespace: team.a
tasks:
  - id: call
    type: io.kestra.plugin.core.flow.Subflow
    namespace: team.b
    flowId: payroll
"""

YAML = {"Content-Type": "application/x-yaml"}


def test_create_refuses_a_subflow_into_a_namespace_that_grants_nothing(client: TestClient) -> None:
    response = client.post("/api/v1/main/flows", content=CALLER, headers=YAML)

    assert response.status_code == 422
    [error] = response.json()["_embedded"]["errors"]
    assert error["path"] == "tasks.call.namespace" and error["line"] == 4
    assert "namespace 'team.a' may not use namespace 'team.b' (execution.run)" in error["message"]


def test_validate_reports_the_same_reference_as_a_constraint(client: TestClient) -> None:
    [verdict] = client.post("/api/v1/main/flows/validate", content=CALLER, headers=YAML).json()

    assert "may not use namespace 'team.b'" in verdict["constraints"]
    assert verdict["errors"][0]["line"] == 4


def test_create_accepts_it_once_team_b_grants_team_a(make_client: AppFactory) -> None:
    granted = make_client(namespace_access={"team.b": [{"namespace": "team.a", "uses": ["execution.run"]}]})

    assert granted.post("/api/v1/main/flows", content=CALLER, headers=YAML).status_code == 200
