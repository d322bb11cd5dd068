"""Creating an execution over HTTP: the body it reads, and its logs under the execution path too."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.integration.api.conftest import flow_source

E = "/api/v1/main/executions"


def _deploy(client: TestClient, namespace: str = "a") -> None:
    response = client.post(
        "/api/v1/main/flows", content=flow_source(namespace), headers={"Content-Type": "application/x-yaml"}
    )
    assert response.status_code == 200, response.text


def test_a_json_body_is_refused_with_415_naming_multipart(client: TestClient) -> None:
    _deploy(client)

    response = client.post(f"{E}/a/hello", json={"who": "Ada"})

    assert response.status_code == 415, response.text
    [error] = response.json()["_embedded"]["errors"]
    assert error["path"] == "Content-Type"
    assert "application/json" in error["message"] and "multipart/form-data" in error["message"]


def test_no_body_and_a_multipart_body_are_both_accepted(client: TestClient) -> None:
    _deploy(client)

    bare = client.post(f"{E}/a/hello")
    form = client.post(f"{E}/a/hello", files={"who": (None, "Ada")})

    assert bare.status_code == 200, bare.text
    assert form.status_code == 200, form.text
    assert form.json()["inputs"]["who"] == "Ada"


def test_logs_are_served_under_the_execution_path_too(client: TestClient) -> None:
    _deploy(client)
    execution_id = client.post(f"{E}/a/hello").json()["id"]

    under_execution = client.get(f"{E}/{execution_id}/logs")
    under_logs = client.get(f"/api/v1/main/logs/{execution_id}")
    unknown = client.get(f"{E}/nosuchexecution/logs")

    assert under_execution.status_code == 200, under_execution.text
    assert under_execution.json() == under_logs.json()
    assert unknown.status_code == 404
