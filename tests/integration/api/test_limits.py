"""Request limits and error bodies: 413 for large bodies, 422 naming the field, JSON for every 4xx."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.integration.api.conftest import AppFactory


def test_a_body_over_the_limit_is_a_json_413(make_client: AppFactory) -> None:
    client = make_client(max_body_bytes=2048)

    response = client.post("/api/v1/main/flows", content="x" * 4096, headers={"Content-Type": "application/x-yaml"})

    assert response.status_code == 413
    assert response.json()["_embedded"]["errors"][0]["path"] == "body"


def test_a_streamed_body_over_the_limit_is_a_json_413(make_client: AppFactory) -> None:
    client = make_client(max_body_bytes=2048)

    def chunks() -> object:
        yield b"x" * 1500
        yield b"x" * 1500

    response = client.put("/api/v1/main/namespaces/a/kv/k", content=chunks())  # type: ignore[arg-type]

    assert response.status_code == 413


def test_a_bad_query_parameter_is_422_naming_it(client: TestClient) -> None:
    response = client.get("/api/v1/main/flows/search", params={"page": "first"})

    assert response.status_code == 422
    assert response.json()["_embedded"]["errors"][0]["path"] == "query.page"


def test_a_nul_byte_in_the_url_is_422_not_500(client: TestClient) -> None:
    response = client.get("/api/v1/main/flows/search", params={"q": "a\x00b"})

    assert response.status_code == 422
    assert response.json()["_embedded"]["errors"][0]["path"] == "query"


def test_an_unknown_route_is_a_json_404(client: TestClient) -> None:
    response = client.get("/api/v1/main/nothing/here")

    assert response.status_code == 404 and "message" in response.json()


def test_another_tenant_is_400_naming_the_tenant(client: TestClient) -> None:
    response = client.get("/api/v1/acme/flows/search")

    assert response.status_code == 400
    assert response.json()["_embedded"]["errors"][0]["path"] == "tenant"


def test_the_tenantless_paths_are_aliases_of_main(client: TestClient) -> None:
    assert client.get("/api/v1/flows/search").status_code == 200
