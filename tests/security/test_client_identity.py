"""Who the client is and how hard it may guess: trusted proxies only, lockouts per account and address with a
per-address ceiling, every login door counted (console login, tokens, session cookies), and the console's
cookies and framing. Issue 16, "Medium / low"."""

from __future__ import annotations

import argparse
import ast
import inspect
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from orchestrator.cli import cluster, local
from orchestrator.cli.processes import api_config
from orchestrator.settings import load_settings
from tests.integration.api.conftest import ADMIN, AppFactory

pytestmark = pytest.mark.security

ME = "/api/v1/main/me"
SEARCH = "/api/v1/main/flows/search"


def peer(client: TestClient, address: str) -> TestClient:
    """Another connection to the same started app, from `address`."""
    return TestClient(client.app, base_url="http://127.0.0.1", client=(address, 40000))


def _guard(make_client: AppFactory, **overrides: Any) -> TestClient:
    return make_client(admin_username=ADMIN[0], admin_password=ADMIN[1], login_max_failures=3, **overrides)


def test_chorus_server_and_chorus_local_do_not_let_uvicorn_trust_forwarded_headers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: dict[str, Any] = {}
    monkeypatch.setattr(cluster, "serve", lambda config: seen.update(proxy_headers=config.proxy_headers))
    cluster.chorus_server(argparse.Namespace(), load_settings())
    # `chorus local` builds the API's config the same way, never with a uvicorn.Config of its own.
    local_calls = [
        getattr(node.func, "id", None) or getattr(node.func, "attr", None)
        for node in ast.walk(ast.parse(inspect.getsource(local)))
        if isinstance(node, ast.Call)
    ]

    assert seen["proxy_headers"] is False  # uvicorn's default believes X-Forwarded-For from 127.0.0.1
    assert api_config(load_settings()).proxy_headers is False
    assert "api_config" in local_calls and "Config" not in local_calls


def test_forwarded_for_from_an_untrusted_peer_changes_nothing(make_client: AppFactory) -> None:
    local_peer = peer(_guard(make_client), "127.0.0.1")

    statuses = [
        local_peer.get(SEARCH, auth=(ADMIN[0], "wrong"), headers={"X-Forwarded-For": f"203.0.113.{n}"}).status_code
        for n in range(4)
    ]

    assert statuses == [401, 401, 401, 429]  # one client, whatever it claims to be


def test_a_trusted_proxy_names_the_client_and_each_client_has_its_own_lockout(make_client: AppFactory) -> None:
    proxy = peer(_guard(make_client, trusted_proxies="10.0.0.0/8"), "10.1.2.3")

    def attempt(client_address: str, password: str) -> int:
        # The client wrote the left part itself: only the part the trusted proxy appended counts.
        forwarded = {"X-Forwarded-For": f"198.51.100.99, {client_address}"}
        return proxy.get(SEARCH, auth=(ADMIN[0], password), headers=forwarded).status_code

    guesser = [attempt("203.0.113.7", "wrong") for _ in range(4)]
    neighbour = attempt("203.0.113.8", ADMIN[1])

    assert guesser == [401, 401, 401, 429]
    assert neighbour == 200


def test_guessing_tokens_from_an_address_does_not_lock_out_valid_tokens_behind_it(make_client: AppFactory) -> None:
    client = _guard(make_client)
    token = client.post("/api/v1/main/tokens", json={"name": "ci"}, auth=ADMIN).json()["token"]

    guesses = [client.get(ME, headers={"Authorization": f"Bearer chorus_guess{n}"}).status_code for n in range(4)]
    valid = client.get(ME, headers={"Authorization": f"Bearer {token}"})

    assert guesses == [401] * 4
    assert valid.status_code == 200


def test_an_address_spraying_usernames_is_throttled_without_locking_the_accounts_elsewhere(
    make_client: AppFactory,
) -> None:
    client = _guard(make_client, login_address_max_failures=5)
    sprayer, elsewhere = peer(client, "192.0.2.1"), peer(client, "192.0.2.2")

    sprayed = [sprayer.get(SEARCH, auth=(f"user{n}@x", "guess")).status_code for n in range(6)]
    token_guess = sprayer.get(ME, headers={"Authorization": "Bearer chorus_guess"})

    assert sprayed == [401] * 5 + [429]
    assert token_guess.status_code == 429
    assert elsewhere.get(SEARCH, auth=ADMIN).status_code == 200
    assert elsewhere.get(SEARCH, auth=("user0@x", "guess")).status_code == 401


def test_console_login_shares_the_lockout_of_the_api(make_client: AppFactory) -> None:
    client = _guard(make_client)

    wrong = [client.post("/ui/login", json={"username": ADMIN[0], "password": "wrong"}).status_code for _ in range(3)]
    locked = client.post("/ui/login", json={"username": ADMIN[0], "password": ADMIN[1]})
    basic = client.get(SEARCH, auth=ADMIN)

    assert wrong == [401, 401, 401]
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) >= 1
    assert basic.status_code == 429  # the same account from the same address, whatever the door


def test_token_guesses_at_console_login_and_in_the_session_cookie_are_counted(make_client: AppFactory) -> None:
    client = _guard(make_client, login_address_max_failures=4)

    at_login = [client.post("/ui/login", json={"token": f"chorus_guess{n}"}).status_code for n in range(2)]
    in_cookie = []
    for n in range(3):
        client.cookies.set("chorus_session", f"t:chorus_guess{n}")
        in_cookie.append(client.get(ME).status_code)
    client.cookies.clear()

    assert at_login == [401, 401]
    assert in_cookie == [401, 401, 429]
    assert client.post("/ui/login", json={"token": "chorus_guess9"}).status_code == 429


def _session_cookie(response: Any) -> str:
    cookies: list[str] = response.headers.get_list("set-cookie")
    return next(c for c in cookies if c.startswith("chorus_session="))


def test_cookies_are_secure_behind_a_trusted_tls_proxy_or_when_configured(make_client: AppFactory) -> None:
    login = {"username": ADMIN[0], "password": ADMIN[1]}
    https = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.5"}
    behind = peer(make_client(admin_username=ADMIN[0], admin_password=ADMIN[1], trusted_proxies="10.0.0.1"), "10.0.0.1")
    forced = make_client(admin_username=ADMIN[0], admin_password=ADMIN[1], cookie_secure=True)

    via_proxy = behind.post("/ui/login", json=login, headers=https)
    spoofed = peer(behind, "10.0.0.2").post("/ui/login", json=login, headers=https)
    configured = forced.post("/ui/login", json=login)

    assert "Secure" in _session_cookie(via_proxy)
    assert "Secure" not in _session_cookie(spoofed)
    assert "Secure" in _session_cookie(configured)


def test_a_console_session_cannot_mint_a_token_that_outlives_the_limit(auth_client: TestClient) -> None:
    auth_client.post("/ui/login", json={"username": ADMIN[0], "password": ADMIN[1]})
    csrf = {"X-CSRF-Token": auth_client.cookies["chorus_csrf"]}

    unbounded = auth_client.post("/api/v1/main/tokens", json={"name": "from-console"}, headers=csrf)
    too_long = auth_client.post("/api/v1/main/tokens", json={"name": "long", "expiresIn": "P365D"}, headers=csrf)

    assert unbounded.status_code == 200, unbounded.text
    expires_at = datetime.fromisoformat(unbounded.json()["expiresAt"].replace("Z", "+00:00"))
    assert expires_at <= datetime.now(UTC) + timedelta(days=30, minutes=1)
    assert too_long.status_code == 422 and too_long.json()["_embedded"]["errors"][0]["path"] == "expiresIn"


def test_an_api_client_may_still_mint_a_long_lived_token(auth_client: TestClient) -> None:
    response = auth_client.post("/api/v1/main/tokens", json={"name": "ci", "expiresIn": "P365D"}, auth=ADMIN)

    assert response.status_code == 200, response.text


@pytest.mark.parametrize("path", ["/ui", "/ui/executions/x", "/ui/session", "/ui/static/js/main.js"])
def test_no_console_response_may_be_framed(auth_client: TestClient, path: str) -> None:
    response = auth_client.get(path)

    assert response.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


def test_made_up_http_methods_do_not_grow_the_metrics(client: TestClient) -> None:
    for n in range(5):
        client.request(f"BREW{n}", "/health")
        client.request("GET", f"/no/such/route/{n}")

    text = client.get("/metrics").text

    assert "BREW" not in text
    assert 'method="OTHER"' in text
    assert "/no/such/route" not in text
