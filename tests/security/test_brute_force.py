"""Password and token guessing is rate-limited: after a few failures from one address, 429 with Retry-After.

Also: secrets are compared in ways that leak nothing through timing (an unknown user costs an Argon2
verification like a known one; tokens are looked up by their SHA-256, webhook keys by compare_digest).
"""

from __future__ import annotations

import ast
import inspect
import statistics
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.integration.api.conftest import ADMIN, AppFactory

pytestmark = pytest.mark.security

SEARCH = "/api/v1/main/flows/search"
ROOT = Path(__file__).resolve().parents[2]


def test_repeated_wrong_passwords_lock_the_username_out_with_429_and_retry_after(make_client: AppFactory) -> None:
    client = make_client(admin_username=ADMIN[0], admin_password=ADMIN[1], login_max_failures=3, login_lockout_s=60)

    failures = [client.get(SEARCH, auth=(ADMIN[0], f"guess-{n}")).status_code for n in range(3)]
    locked = client.get(SEARCH, auth=(ADMIN[0], "guess-4"))
    even_the_right_password = client.get(SEARCH, auth=ADMIN)

    assert failures == [401, 401, 401]
    assert locked.status_code == 429
    assert 1 <= int(locked.headers["Retry-After"]) <= 60
    assert locked.json()["_embedded"]["errors"][0]["path"] == "authorization"
    assert "too many failed logins" in locked.json()["message"]
    assert even_the_right_password.status_code == 429  # no oracle while locked


def test_the_lockout_is_per_username_and_a_success_clears_the_count(make_client: AppFactory) -> None:
    client = make_client(admin_username=ADMIN[0], admin_password=ADMIN[1], login_max_failures=3)

    for n in range(3):
        client.get(SEARCH, auth=("somebody-else", f"guess-{n}"))
    statuses = []
    for _ in range(2):
        statuses += [client.get(SEARCH, auth=(ADMIN[0], "wrong")).status_code for _ in range(2)]
        statuses.append(client.get(SEARCH, auth=ADMIN).status_code)

    assert client.get(SEARCH, auth=("somebody-else", "again")).status_code == 429
    assert statuses == [401, 401, 200, 401, 401, 200]


def test_the_lockout_ends_after_its_time(make_client: AppFactory) -> None:
    client = make_client(admin_username=ADMIN[0], admin_password=ADMIN[1], login_max_failures=2, login_lockout_s=1)
    for _ in range(2):
        client.get(SEARCH, auth=(ADMIN[0], "wrong"))
    assert client.get(SEARCH, auth=ADMIN).status_code == 429

    time.sleep(1.1)

    assert client.get(SEARCH, auth=ADMIN).status_code == 200


def test_guessing_bearer_tokens_is_rate_limited_per_address(make_client: AppFactory) -> None:
    # A token names no account: its guesses count against the address's own ceiling.
    client = make_client(admin_username=ADMIN[0], admin_password=ADMIN[1], login_address_max_failures=4)

    statuses = [client.get(SEARCH, headers={"Authorization": f"Bearer chorus_guess{n}"}).status_code for n in range(6)]

    assert statuses == [401, 401, 401, 401, 429, 429]


def test_an_unknown_username_costs_as_much_as_a_wrong_password(auth_client: TestClient) -> None:
    def timed(username: str) -> float:
        started = time.perf_counter()
        auth_client.get(SEARCH, auth=(username, "not-the-password"))
        return time.perf_counter() - started

    # Interleaved, medians: other processes share the CPU. Argon2 takes tens of milliseconds; a skipped
    # verification would make unknown users answer several times faster.
    known, unknown = [], []
    for n in range(4):  # under the default lockout threshold of 5
        known.append(timed(ADMIN[0]))
        unknown.append(timed(f"nobody-{n}"))
    assert statistics.median(unknown) > 0.5 * statistics.median(known)


def test_secrets_are_never_compared_with_equality_operators() -> None:
    """Tokens are found by their SHA-256 (an index lookup reveals nothing about the secret), passwords by
    Argon2's verify, webhook keys by hmac.compare_digest; no `==` on a secret anywhere in the API or engine."""
    suspicious = []
    for path in [*ROOT.glob("api/**/*.py"), *ROOT.glob("orchestrator/*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Compare) or not any(isinstance(op, ast.Eq | ast.NotEq) for op in node.ops):
                continue
            sides = [node.left, *node.comparators]
            if any(isinstance(side, ast.Compare) for side in sides):
                continue  # `(a is None) != (b is None)`: compares presence, not values
            names = {n.id.lower() for n in ast.walk(node) if isinstance(n, ast.Name)}
            names |= {n.attr.lower() for n in ast.walk(node) if isinstance(n, ast.Attribute)}
            if names & {"password", "secret", "token", "api_key", "credentials"}:
                suspicious.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert suspicious == []
    from orchestrator.engine import submission as engine

    assert "hmac.compare_digest" in inspect.getsource(engine._webhook_matches)
