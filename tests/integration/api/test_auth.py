"""Authentication: Basic users, Bearer tokens (hashed, expiring, revocable), the bootstrap admin, anonymous loopback."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import psycopg
from fastapi.testclient import TestClient

from orchestrator.engine.accounts import Binding
from tests.harness.services import psycopg_url
from tests.integration.api.conftest import ADMIN, AppFactory

SEARCH = "/api/v1/main/flows/search"


def test_without_credentials_configured_on_loopback_requests_are_anonymous_admins(client: TestClient) -> None:
    assert client.get("/api/v1/main/me").json()["actor"] == "anonymous"
    assert client.get(SEARCH).status_code == 200


def test_a_request_without_credentials_is_401_with_a_json_body(auth_client: TestClient) -> None:
    response = auth_client.get(SEARCH)

    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Basic")
    assert response.json()["message"].startswith("authentication required")


def test_the_bootstrap_admin_authenticates_with_basic(auth_client: TestClient) -> None:
    me = auth_client.get("/api/v1/main/me", auth=ADMIN).json()

    assert me["actor"] == f"user:{ADMIN[0]}"
    assert me["roles"] == [{"role": "admin", "namespace": ""}]


def test_a_wrong_password_is_401(auth_client: TestClient) -> None:
    assert auth_client.get(SEARCH, auth=(ADMIN[0], "wrong-password")).status_code == 401


def test_health_and_configs_stay_open(auth_client: TestClient) -> None:
    assert auth_client.get("/health").status_code == 200
    assert auth_client.get("/api/v1/configs").json()["isBasicAuthEnabled"] is True


def test_a_token_created_over_the_api_authenticates_and_is_stored_hashed(
    auth_client: TestClient, database_url: str
) -> None:
    created = auth_client.post("/api/v1/main/tokens", json={"name": "ci", "expiresIn": "P1D"}, auth=ADMIN).json()

    bearer = {"Authorization": f"Bearer {created['token']}"}
    assert auth_client.get("/api/v1/main/me", headers=bearer).json()["actor"] == f"token:{ADMIN[0]}/ci"
    with psycopg.connect(psycopg_url(database_url)) as conn:
        stored = conn.execute("SELECT token_hash FROM api_tokens WHERE id = %s", (created["id"],)).fetchone()
    assert stored == (hashlib.sha256(created["token"].encode()).hexdigest(),)


def test_a_revoked_token_is_401(auth_client: TestClient) -> None:
    created = auth_client.post("/api/v1/main/tokens", json={"name": "short"}, auth=ADMIN).json()
    bearer = {"Authorization": f"Bearer {created['token']}"}

    assert auth_client.delete(f"/api/v1/main/tokens/{created['id']}", auth=ADMIN).status_code == 204
    assert auth_client.get(SEARCH, headers=bearer).status_code == 401


def test_an_expired_token_is_401(auth_client: TestClient) -> None:
    accounts = auth_client.app.state.accounts  # type: ignore[attr-defined]
    new = accounts.create_token(ADMIN[0], "old", expires_in=timedelta(microseconds=1), actor="test")

    assert auth_client.get(SEARCH, headers={"Authorization": f"Bearer {new.secret}"}).status_code == 401


def test_a_user_revokes_only_its_own_tokens(auth_client: TestClient) -> None:
    accounts = auth_client.app.state.accounts  # type: ignore[attr-defined]
    accounts.create_user("bob", "bob-password", [Binding("viewer")], actor="test")
    admins = accounts.create_token(ADMIN[0], "admins", expires_in=None, actor="test")

    assert auth_client.delete(f"/api/v1/main/tokens/{admins.row.id}", auth=("bob", "bob-password")).status_code == 404
    assert [t["name"] for t in auth_client.get("/api/v1/main/tokens", auth=("bob", "bob-password")).json()] == []


def test_a_malformed_authorization_header_is_401(auth_client: TestClient) -> None:
    for header in ("Basic !!!", "Bearer", "Digest x", "Basic " + "YWJj"):
        assert auth_client.get(SEARCH, headers={"Authorization": header}).status_code == 401, header


def test_restarting_with_a_new_admin_password_replaces_the_old_one(make_client: AppFactory) -> None:
    make_client(admin_username=ADMIN[0], admin_password=ADMIN[1])
    second = make_client(admin_username=ADMIN[0], admin_password="another-password")

    assert second.get(SEARCH, auth=(ADMIN[0], "another-password")).status_code == 200
    assert second.get(SEARCH, auth=ADMIN).status_code == 401
