"""In-process API fixtures: `create_app` on a fresh database, driven by Starlette's TestClient (no worker)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from orchestrator.settings import load_settings
from tests.conftest import empty_redis_db, flush_redis_db
from tests.harness import services

ADMIN = ("admin@chorus.test", "admin-password-1")


@pytest.fixture(scope="session")
def api_redis_url(redis_url: str) -> Iterator[str]:
    """A Redis database of its own: executions submitted here must not reach the e2e stack's worker."""
    url = empty_redis_db(services.redis_url(), exclude=redis_url)
    yield url
    flush_redis_db(url)


AppFactory = Callable[..., TestClient]


def _client_factory(database_url: str, redis_url: str) -> Iterator[AppFactory]:
    clients: list[TestClient] = []

    def make(**overrides: Any) -> TestClient:
        settings = load_settings(database_url=database_url, broker_url=redis_url, **overrides)
        client = TestClient(create_app(settings, sweeper=False), base_url="http://127.0.0.1")
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def make_client(database_url: str, api_redis_url: str) -> Iterator[AppFactory]:
    """`make_client(**settings)`: a started app (lifespan run) on this test's database."""
    yield from _client_factory(database_url, api_redis_url)


@pytest.fixture(scope="module")
def make_module_client(admin_url: str, template_database: str, api_redis_url: str) -> Iterator[AppFactory]:
    """The same, on a database shared by one test module (for read-mostly matrices)."""
    name = services.unique_database_name("api")
    url = services.create_database(admin_url, name, template=template_database)
    try:
        yield from _client_factory(url, api_redis_url)
    finally:
        services.drop_database(admin_url, name)


@pytest.fixture
def client(make_client: AppFactory) -> TestClient:
    """No credentials configured, on loopback: every request is an anonymous admin."""
    return make_client()


@pytest.fixture
def auth_client(make_client: AppFactory) -> TestClient:
    """Credentials required; the bootstrap admin is ADMIN. Requests carry no credentials by default."""
    return make_client(admin_username=ADMIN[0], admin_password=ADMIN[1])


HELLO = """
id: hello
namespace: {ns}
labels:
  team: ai
inputs:
  - id: who
    type: STRING
    defaults: world
tasks:
  - id: say
    type: io.kestra.plugin.core.log.Log
    message: "Hello {{{{ inputs.who }}}}"
"""


def flow_source(namespace: str, flow_id: str = "hello") -> str:
    return HELLO.format(ns=namespace).replace("id: hello", f"id: {flow_id}", 1)
