"""schemathesis against the generated OpenAPI, authenticated and not: no generated request may get a 5xx,
and without credentials nothing but the open routes succeeds (401, or 422 for parameters invalid anyway).

The default run sends a few hundred requests; the `slow` run at least 2,000. Both report their counts.
"""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass, field

import hypothesis
import pytest
import requests
from hypothesis import HealthCheck, Phase

from tests.e2e.api.conftest import ADMIN, Server

pytestmark = pytest.mark.security

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import schemathesis


@dataclass
class Tally:
    statuses: Counter[int] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    unguarded: list[str] = field(default_factory=list)  #: succeeded without credentials

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())


def _open_route(path: str) -> bool:
    """Routes Kestra leaves open (and webhooks, whose key in the path is the credential), and the A2A agent card,
    which A2A clients read before they authenticate (anonymous callers see only its security scheme, no skill)."""
    return (
        path.startswith(("/health", "/api/v1/configs", "/metrics", "/.well-known/agent-card.json"))
        or "/executions/webhook/" in path
    )


def fuzz(server: Server, examples_per_operation: int, *, authenticated: bool = True) -> Tally:
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    session = requests.Session()
    if authenticated:
        session.auth = ADMIN
    tally = Tally()
    for result in schema.get_all_operations():
        operation = result.ok()

        @hypothesis.settings(
            max_examples=examples_per_operation,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @hypothesis.given(case=operation.as_strategy())
        def call(case: schemathesis.Case) -> None:
            response = case.call(session=session, base_url=server.url, timeout=30)
            tally.statuses[response.status_code] += 1
            if response.status_code >= 500:
                tally.server_errors.append(
                    f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:200]}"
                )
            elif not authenticated and response.status_code < 400 and not _open_route(case.operation.path):
                tally.unguarded.append(f"{case.method} {case.formatted_path}: {response.status_code}")

        call()
    return tally


def _report(tally: Tally) -> str:
    return f"{tally.requests} requests, statuses {dict(sorted(tally.statuses.items()))}"


@pytest.mark.slow  # ~30 s with its server; tests/security fuzzes the API in the default run
def test_a_short_fuzz_finds_no_server_error(fuzz_server: Server) -> None:
    tally = fuzz(fuzz_server, examples_per_operation=5)

    print(f"schemathesis (short): {_report(tally)}")
    assert tally.requests >= 300
    assert tally.server_errors == []


@pytest.mark.slow  # see above
def test_a_short_unauthenticated_fuzz_is_refused_with_no_server_error(fuzz_server: Server) -> None:
    tally = fuzz(fuzz_server, examples_per_operation=4, authenticated=False)

    print(f"schemathesis (unauthenticated): {_report(tally)}")
    assert tally.requests >= 150
    assert tally.server_errors == []
    assert tally.unguarded == []


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_a_long_fuzz_of_at_least_2000_requests_finds_no_server_error(fuzz_server: Server) -> None:
    tally = fuzz(fuzz_server, examples_per_operation=50)

    print(f"schemathesis (long): {_report(tally)}")
    assert tally.requests >= 2000
    assert tally.server_errors == []


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_a_long_unauthenticated_fuzz_is_refused_with_no_server_error(fuzz_server: Server) -> None:
    tally = fuzz(fuzz_server, examples_per_operation=30, authenticated=False)

    print(f"schemathesis (unauthenticated, long): {_report(tally)}")
    assert tally.server_errors == []
    assert tally.unguarded == []
