"""The console's login: a session cookie (HttpOnly, SameSite=Strict) that authenticates API calls, CSRF on writes."""

from __future__ import annotations

import re

import psycopg
import pytest
from fastapi.testclient import TestClient

from orchestrator.engine.accounts import Binding
from tests.harness.services import psycopg_url
from tests.integration.api.conftest import ADMIN, flow_source

ME = "/api/v1/main/me"
CONSOLE = {"X-Chorus-Console": "1"}


def _login(client: TestClient, username: str = ADMIN[0], password: str = ADMIN[1]) -> dict[str, str]:
    response = client.post("/ui/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_the_console_page_and_its_assets_are_served_without_login(auth_client: TestClient) -> None:
    page = auth_client.get("/ui/executions/abc")
    script = auth_client.get("/ui/static/js/main.js")

    assert page.status_code == 200 and "/ui/static/js/main.js" in page.text
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy
    # The one inline style allowed (the editor's stylesheet) carries this page's nonce, new on every load.
    nonce = re.search(r'name="csp-nonce" content="([^"]+)"', page.text)
    assert nonce and f"style-src 'self' 'nonce-{nonce[1]}'" in policy
    # Kestra's create-execution answer links here: the same page, routed by its script.
    other = auth_client.get("/ui/main/executions/company/hello/abc").text
    assert nonce[1] not in other
    assert other.replace(re.findall(r'csp-nonce" content="([^"]+)"', other)[0], nonce[1]) == page.text
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]


def test_a_wrong_password_is_401_without_a_basic_dialog_and_is_audited(
    auth_client: TestClient, database_url: str
) -> None:
    response = auth_client.post("/ui/login", json={"username": ADMIN[0], "password": "wrong-password"})

    assert response.status_code == 401
    assert "www-authenticate" not in response.headers
    assert response.json()["_embedded"]["errors"][0]["path"] == "password"
    assert "chorus_session" not in response.cookies
    with psycopg.connect(psycopg_url(database_url)) as conn:
        denied = conn.execute(
            "SELECT count(*) FROM audit_events WHERE action = 'http.post' AND payload->>'outcome' = 'denied'"
            " AND payload->>'path' = '/ui/login'"
        ).fetchone()
    assert denied == (1,)


def test_an_api_401_for_the_console_carries_no_basic_challenge(auth_client: TestClient) -> None:
    assert "www-authenticate" in auth_client.get(ME).headers
    assert "www-authenticate" not in auth_client.get(ME, headers=CONSOLE).headers


def test_login_sets_an_httponly_strict_cookie_that_authenticates_api_calls(auth_client: TestClient) -> None:
    response = auth_client.post("/ui/login", json={"username": ADMIN[0], "password": ADMIN[1]})

    set_cookies = response.headers.get_list("set-cookie")
    session = next(c for c in set_cookies if c.startswith("chorus_session="))
    csrf = next(c for c in set_cookies if c.startswith("chorus_csrf="))
    assert "HttpOnly" in session and "SameSite=strict" in session and "Path=/" in session
    assert "HttpOnly" not in csrf and "SameSite=strict" in csrf
    assert response.json()["csrfToken"] == auth_client.cookies["chorus_csrf"]
    me = auth_client.get(ME).json()
    assert me["actor"] == f"token:{ADMIN[0]}/console"
    assert auth_client.get("/ui/session").json()["grants"][0]["namespace"] == ""


def test_a_write_with_the_session_cookie_but_without_the_csrf_header_is_403(
    auth_client: TestClient, unique: str
) -> None:
    _login(auth_client)

    response = auth_client.post(
        "/api/v1/main/flows", content=flow_source(unique), headers={"Content-Type": "application/x-yaml"}
    )

    assert response.status_code == 403
    assert response.json()["_embedded"]["errors"][0]["path"] == "header.x-csrf-token"
    assert auth_client.get(f"/api/v1/main/flows/{unique}/hello").status_code == 404


def test_a_wrong_csrf_token_is_403_and_the_right_one_is_accepted(auth_client: TestClient, unique: str) -> None:
    token = _login(auth_client)["csrfToken"]
    headers = {"Content-Type": "application/x-yaml"}

    wrong = auth_client.post(
        "/api/v1/main/flows", content=flow_source(unique), headers={**headers, "X-CSRF-Token": "0" * 64}
    )
    right = auth_client.post(
        "/api/v1/main/flows", content=flow_source(unique), headers={**headers, "X-CSRF-Token": token}
    )

    assert wrong.status_code == 403
    assert right.status_code == 200, right.text
    audit = auth_client.get(f"/api/v1/main/flows/{unique}/hello/audit").json()
    assert audit["events"][0]["actor"].startswith(f"token:{ADMIN[0]}/console@")


def test_reads_need_no_csrf_token(auth_client: TestClient) -> None:
    _login(auth_client)

    assert auth_client.get("/api/v1/main/flows/search").status_code == 200


def test_logout_needs_the_csrf_token_and_revokes_the_session(auth_client: TestClient) -> None:
    token = _login(auth_client)["csrfToken"]
    stolen = auth_client.cookies["chorus_session"]

    assert auth_client.post("/ui/logout").status_code == 403
    assert auth_client.get(ME).status_code == 200
    response = auth_client.post("/ui/logout", headers={"X-CSRF-Token": token})

    assert response.status_code == 204
    assert "chorus_session" not in auth_client.cookies
    # The session token is revoked, not just forgotten: a copy of the cookie is worthless now.
    assert auth_client.get(ME, headers={"Cookie": f"chorus_session={stolen}"}).status_code == 401
    assert auth_client.get("/ui/session").status_code == 401


def test_login_with_an_api_token_keeps_the_token_alive_at_logout(auth_client: TestClient) -> None:
    created = auth_client.post("/api/v1/main/tokens", json={"name": "mine"}, auth=ADMIN).json()

    session = auth_client.post("/ui/login", json={"token": created["token"]}).json()
    assert auth_client.get(ME).json()["actor"] == f"token:{ADMIN[0]}/mine"
    assert auth_client.post("/ui/logout", headers={"X-CSRF-Token": session["csrfToken"]}).status_code == 204

    bearer = {"Authorization": f"Bearer {created['token']}"}
    assert auth_client.get(ME, headers=bearer).status_code == 200
    assert auth_client.post("/ui/login", json={"token": "chorus_nope"}).status_code == 401


def test_login_from_another_origin_is_refused(auth_client: TestClient) -> None:
    response = auth_client.post(
        "/ui/login", json={"username": ADMIN[0], "password": ADMIN[1]}, headers={"Origin": "https://evil.example"}
    )

    assert response.status_code == 403
    assert "chorus_session" not in auth_client.cookies


def test_login_without_credentials_names_the_field(auth_client: TestClient) -> None:
    response = auth_client.post("/ui/login", json={"username": ADMIN[0]})

    assert response.status_code == 422
    assert response.json()["_embedded"]["errors"][0]["path"] == "username"


def test_the_session_reports_the_grants_of_each_role_binding(auth_client: TestClient) -> None:
    accounts = auth_client.app.state.accounts  # type: ignore[attr-defined]
    accounts.create_user("vera", "vera-password", [Binding("viewer"), Binding("approver", "company")], actor="t")

    _login(auth_client, "vera", "vera-password")
    grants = {g["namespace"]: g["permissions"] for g in auth_client.get("/ui/session").json()["grants"]}

    assert "execution.resume" in grants["company"] and "execution.resume" not in grants[""]
    assert "execution.control" not in grants["company"]


def test_an_authorization_header_wins_over_the_cookie(auth_client: TestClient) -> None:
    accounts = auth_client.app.state.accounts  # type: ignore[attr-defined]
    accounts.create_user("val", "val-password", [Binding("viewer")], actor="t")
    _login(auth_client)

    assert auth_client.get(ME, auth=("val", "val-password")).json()["actor"] == "user:val"


def test_without_credentials_configured_the_session_is_the_anonymous_admin(client: TestClient) -> None:
    session = client.get("/ui/session").json()

    assert session["authRequired"] is False and session["actor"] == "anonymous"


def test_a_malformed_or_forged_session_cookie_is_just_unauthenticated(auth_client: TestClient) -> None:
    for cookie in ('chorus_session="s:unterminated', "chorus_session=s:chorus_forged", "chorus_session=x"):
        response = auth_client.get(ME, headers={"Cookie": cookie, **CONSOLE})

        assert response.status_code == 401, cookie
        assert "www-authenticate" not in response.headers


@pytest.fixture
def unique() -> str:
    import uuid

    return f"console.n{uuid.uuid4().hex[:8]}"
