"""API e2e fixtures: a second `chorus server` with authentication on the stack's database and broker,
and a throwaway server (own database and Redis database, no worker) for schemathesis to fuzz."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import pytest

from orchestrator.cli.embedded import free_port
from tests.conftest import empty_redis_db, flush_redis_db
from tests.e2e.conftest import Stack
from tests.harness import services
from tests.harness.cluster import Cluster

ADMIN = ("admin@kestra.io", "Admin1234")


@dataclass
class Server:
    url: str  #: http://127.0.0.1:PORT
    api: httpx.Client  #: authenticated as ADMIN, based at /api/v1/main


@contextmanager
def _server_only(env: Mapping[str, str]) -> Iterator[Server]:
    """One more `chorus server` (no worker of its own) with `env`, as ADMIN's client."""
    with Cluster({**env, "CHORUS_METRICS_PORT": str(free_port())}) as cluster:
        cluster.start_server()
        with httpx.Client(base_url=cluster.api_url, auth=ADMIN, timeout=30) as client:
            yield Server(cluster.url, client)


@pytest.fixture(scope="session")
def auth_server(stack: Stack) -> Iterator[Server]:
    """Another API replica of the stack (same database, broker and worker) that requires credentials."""
    env = {**stack.env, "CHORUS_ADMIN_USERNAME": ADMIN[0], "CHORUS_ADMIN_PASSWORD": ADMIN[1]}
    with _server_only(env) as server:
        yield server


@pytest.fixture(scope="session")
def fuzz_server(stack: Stack, admin_url: str, template_database: str, redis_url: str) -> Iterator[Server]:
    """A server of its own for fuzzing: random deletes and imports must not touch the other tests' data."""
    name = services.unique_database_name("fuzz")
    database_url = services.create_database(admin_url, name, template=template_database)
    broker = empty_redis_db(services.redis_url(), exclude=redis_url)
    env = {
        **stack.env,
        "CHORUS_DATABASE_URL": database_url,
        "CHORUS_BROKER_URL": broker,
        "CHORUS_RESULT_BACKEND": broker,
        "CHORUS_ADMIN_USERNAME": ADMIN[0],
        "CHORUS_ADMIN_PASSWORD": ADMIN[1],
        "CHORUS_FOLLOW_UNKNOWN_TIMEOUT_S": "0.2",
        "CHORUS_WAIT_TIMEOUT_S": "1",
        "CHORUS_LOG_LEVEL": "WARNING",
    }
    try:
        with _server_only(env) as server:
            yield server
    finally:
        flush_redis_db(broker)
        services.drop_database(admin_url, name)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`slow` tests (the 2,000-request fuzz) run only when asked for with `-m`, as the marker promises."""
    if config.getoption("markexpr"):
        return
    slow = [item for item in items if "slow" in item.keywords]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if "slow" not in item.keywords]
