"""Execution search over HTTP: Kestra's filters and the plain params, labels, states, time, paging."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.integration.api.conftest import AppFactory, flow_source

E = "/api/v1/main/executions"


def setup_runs(client: TestClient) -> list[str]:
    ids = []
    for namespace, labels in [("a", ["env:prod"]), ("a", ["env:dev"]), ("b", ["env:prod", "team:x"])]:
        client.post(
            "/api/v1/main/flows", content=flow_source(namespace), headers={"Content-Type": "application/x-yaml"}
        )
        response = client.post(f"{E}/{namespace}/hello", params={"labels": labels})
        assert response.status_code == 200, response.text
        ids.append(response.json()["id"])
    return ids


@pytest.fixture
def client(make_client: AppFactory) -> TestClient:
    """Executions stay where the API leaves them: no worker, and no local drive (a Log flow would end in its
    submit's transaction), so searches by state see them RUNNING."""
    return make_client(local_drive_max_runs=0)


def found(client: TestClient, path: str = f"{E}/search", **params: object) -> list[str]:
    return [r["id"] for r in client.get(path, params=params).json()["results"]]  # type: ignore[arg-type]


def test_search_by_label_in_both_forms(client: TestClient) -> None:
    ids = setup_runs(client)

    assert set(found(client, **{"filters[labels][EQUALS][env]": "prod"})) == {ids[0], ids[2]}
    assert set(found(client, labels="env:prod")) == {ids[0], ids[2]}
    assert found(client, labels=["env:prod", "team:x"]) == [ids[2]]


def test_search_by_namespace_flow_and_state(client: TestClient) -> None:
    ids = setup_runs(client)

    assert set(found(client, **{"filters[namespace][EQUALS]": "a", "filters[flowId][EQUALS]": "hello"})) == set(ids[:2])
    assert found(client, **{"filters[state][IN]": "SUCCESS,FAILED"}) == []
    assert set(found(client, state="RUNNING")) | set(found(client, state="CREATED")) == set(ids)


def test_search_by_time_range_and_dates(client: TestClient) -> None:
    ids = setup_runs(client)

    assert set(found(client, **{"filters[timeRange][EQUALS]": "PT1H"})) == set(ids)
    assert found(client, **{"filters[startDate][GREATER_THAN]": "2999-01-01T00:00:00Z"}) == []
    bad = client.get(f"{E}/search", params={"filters[startDate][GREATER_THAN]": "soon"})
    assert bad.status_code == 422 and bad.json()["_embedded"]["errors"][0]["path"] == "filters[startDate]"


def test_sorting_and_paging(client: TestClient) -> None:
    ids = setup_runs(client)

    newest_first = found(client, sort="state.startDate:desc")
    page = client.get(f"{E}/search", params={"sort": "state.startDate:asc", "size": 1, "page": 2}).json()

    assert newest_first == list(reversed(ids))
    assert page["total"] == 3 and [r["id"] for r in page["results"]] == [ids[1]]


def test_listing_by_flow_uses_the_exact_namespace(client: TestClient) -> None:
    ids = setup_runs(client)

    assert set(found(client, E, namespace="a", flowId="hello")) == set(ids[:2])
    assert found(client, E, namespace="", flowId="nope") == []


def test_an_unknown_execution_is_404_naming_the_kind(client: TestClient) -> None:
    response = client.get(f"{E}/doesnotexist")

    assert response.status_code == 404
    assert response.json()["_embedded"]["errors"][0]["path"] == "execution"


def test_a_malformed_label_on_create_is_422(client: TestClient) -> None:
    setup_runs(client)

    response = client.post(f"{E}/a/hello", params={"labels": "nocolon"})

    assert response.status_code == 422 and response.json()["_embedded"]["errors"][0]["path"] == "labels"


def test_a_flow_named_like_an_action_is_created_through_the_colliding_path(client: TestClient) -> None:
    source = "id: pause\nnamespace: ops\ntasks:\n  - id: t\n    type: Log\n    message: hi\n"
    client.post("/api/v1/main/flows", content=source, headers={"Content-Type": "application/x-yaml"})

    created = client.post(f"{E}/ops/pause")
    scheduled = client.post(f"{E}/ops/pause", params={"scheduleDate": "2099-01-01T00:00:00Z"})
    malformed = client.post(f"{E}/ops/pause", params={"scheduleDate": "tomorrow"})

    assert created.status_code == 200, created.text
    assert created.json()["flowId"] == "pause"
    assert scheduled.status_code == 200 and scheduled.json()["scheduleDate"].startswith("2099-01-01T00:00:00")
    assert scheduled.json()["state"]["current"] == "CREATED"
    assert malformed.status_code == 422 and "scheduleDate" in malformed.text
