"""A flow naming another namespace literally deploys, as in Kestra (the crossing is refused when it happens:
tests/security/test_namespace_isolation.py), and validate warns about it with its line, unless that namespace
grants the flow's (CHORUS_NAMESPACE_ACCESS)."""

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


def test_create_accepts_a_subflow_into_a_namespace_that_grants_nothing(client: TestClient) -> None:
    response = client.post("/api/v1/main/flows", content=CALLER, headers=YAML)

    assert response.status_code == 200, response.text


def test_validate_warns_about_the_reference_with_its_line(client: TestClient) -> None:
    [verdict] = client.post("/api/v1/main/flows/validate", content=CALLER, headers=YAML).json()

    assert verdict["constraints"] is None and verdict["errors"] == []
    [warning] = verdict["warnings"]
    assert warning.startswith("tasks.call.namespace (line 4, column")
    assert "namespace 'team.a' may not use namespace 'team.b' (execution.run)" in warning
    assert "CHORUS_NAMESPACE_ACCESS" in warning


def test_validate_has_nothing_to_say_once_team_b_grants_team_a(make_client: AppFactory) -> None:
    granted = make_client(namespace_access={"team.b": [{"namespace": "team.a", "uses": ["execution.run"]}]})

    [verdict] = granted.post("/api/v1/main/flows/validate", content=CALLER, headers=YAML).json()
    assert verdict["warnings"] == []
