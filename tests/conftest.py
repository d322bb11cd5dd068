"""Shared fixtures: real PostgreSQL (a migrated template database cloned per test) and real Redis."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import redis

from orchestrator.database import make_engine, migrate
from tests.harness import services

#: Fake protocol servers (OpenAI wire, Jira, webhooks) as session fixtures.
pytest_plugins = ["tests.fakes.fixtures"]


@pytest.fixture(scope="session")
def admin_url() -> str:
    return services.postgres_admin_url()


@pytest.fixture(scope="session")
def template_database(admin_url: str) -> Iterator[str]:
    """A database migrated once per test session; tests get clones of it (fast CREATE ... TEMPLATE)."""
    name = services.unique_database_name("tpl")
    url = services.create_database(admin_url, name)
    engine = make_engine(url)
    try:
        migrate(engine)
    finally:
        engine.dispose()
    yield name
    services.drop_database(admin_url, name)


@pytest.fixture
def database_url(admin_url: str, template_database: str) -> Iterator[str]:
    name = services.unique_database_name("t")
    url = services.create_database(admin_url, name, template=template_database)
    yield url
    services.drop_database(admin_url, name)


def empty_redis_db(base_url: str, *, exclude: str | None = None) -> str:
    """A Redis database number of our own (rq's approach): the first empty one from 15 down."""
    root = base_url.rsplit("/", 1)[0] if base_url.count("/") > 2 else base_url
    preferred = None if exclude else os.environ.get("CHORUS_TEST_REDIS_DB")
    candidates = [int(preferred)] if preferred else list(range(15, 0, -1))
    for number in candidates:
        url = f"{root}/{number}"
        if url == exclude:
            continue
        client = redis.Redis.from_url(url)
        try:
            if preferred or client.dbsize() == 0:
                client.flushdb()
                return url
        finally:
            client.close()
    raise RuntimeError(f"no empty Redis database on {root}; set CHORUS_TEST_REDIS_DB")


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    url = empty_redis_db(services.redis_url())
    yield url
    flush_redis_db(url)


def flush_redis_db(url: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    services.stop_throwaway_servers()
