"""The namespace KV store over HTTP: Kestra's typing, TTL, 404/410, delete, list."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

KV = "/api/v1/main/namespaces/company.team/kv"


@pytest.mark.parametrize(
    ("body", "kind", "value"),
    [('"hello"', "STRING", "hello"), ("42", "NUMBER", 42), ("true", "BOOLEAN", True), ('{"a": 1}', "JSON", {"a": 1}),
     ("2024-01-01", "DATE", "2024-01-01"), ('"PT5M"', "DURATION", "PT5M")],
)  # fmt: skip
def test_a_value_comes_back_with_its_kestra_type(client: TestClient, body: str, kind: str, value: object) -> None:
    assert client.put(f"{KV}/k", content=body, headers={"Content-Type": "text/plain"}).status_code == 200

    got = client.get(f"{KV}/k").json()

    assert (got["type"], got["value"], got["revision"]) == (kind, value, 1)


def test_replacing_a_value_counts_revisions(client: TestClient) -> None:
    client.put(f"{KV}/k", content="1")
    client.put(f"{KV}/k", content="2")

    assert client.get(f"{KV}/k").json()["revision"] == 2


def test_a_missing_key_is_404_and_an_expired_one_410(client: TestClient) -> None:
    client.put(f"{KV}/short", content="1", headers={"ttl": "PT0.001S"})
    import time

    time.sleep(0.01)
    assert client.get(f"{KV}/nothing").status_code == 404
    expired = client.get(f"{KV}/short")
    assert expired.status_code == 410
    assert expired.json()["_embedded"]["errors"][0]["path"] == "key"


def test_an_invalid_literal_is_422_naming_the_body(client: TestClient) -> None:
    response = client.put(f"{KV}/k", content="{broken")

    assert response.status_code == 422
    assert response.json()["_embedded"]["errors"][0]["path"] == "body"


def test_a_bad_ttl_is_422_naming_the_header(client: TestClient) -> None:
    response = client.put(f"{KV}/k", content="1", headers={"ttl": "tomorrow"})

    assert response.status_code == 422
    assert response.json()["_embedded"]["errors"][0]["path"] == "ttl"


def test_delete_answers_whether_something_was_deleted(client: TestClient) -> None:
    client.put(f"{KV}/k", content="1")

    assert client.delete(f"{KV}/k").json() is True
    assert client.delete(f"{KV}/k").json() is False


def test_listing_shows_live_keys_with_their_metadata(client: TestClient) -> None:
    client.put(f"{KV}/b", content="1", headers={"description": "the b"})
    client.put(f"{KV}/a", content="1", headers={"ttl": "PT1H"})

    entries = client.get(KV).json()

    assert [e["key"] for e in entries] == ["a", "b"]
    assert entries[1]["description"] == "the b" and "expirationDate" in entries[0]


def test_namespaces_are_implicit_with_their_parents(client: TestClient) -> None:
    client.put(f"{KV}/k", content="1")

    ids = [n["id"] for n in client.get("/api/v1/main/namespaces/search", params={"size": 100}).json()["results"]]

    assert {"company", "company.team", "system"} <= set(ids)
    assert client.get("/api/v1/main/namespaces/company").json()["id"] == "company"
