"""Shared fixtures: real PostgreSQL (a migrated template database cloned per test) and real Redis."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import pytest
import redis

from orchestrator.store.database import make_engine, migrate
from tests.harness import services

#: Fake protocol servers (OpenAI wire, Jira, webhooks) as session fixtures.
pytest_plugins = ["tests.fakes.fixtures", "tests.harness.stack", "tests.harness.engines", "tests.harness.flower"]


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


class _Databases:
    """Clones of the template made one test ahead and dropped behind it, on a thread of their own.

    A clone and a drop cost ~0.2-0.3 s each of PostgreSQL's file copying and fsyncs, for each of several
    hundred tests: done while the next (or the last) test runs, they overlap its work instead of adding
    to it. Every clone is still used by one test only, and every one is dropped before the session ends.
    """

    def __init__(self, admin_url: str, template: str) -> None:
        self._admin_url, self._template = admin_url, template
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="test-databases")
        self._next: Future[tuple[str, str]] = self._pool.submit(self._clone)
        self._drops: list[Future[None]] = []

    def _clone(self) -> tuple[str, str]:
        name = services.unique_database_name("t")
        return name, services.create_database(self._admin_url, name, template=self._template)

    def take(self) -> tuple[str, str]:
        taken, self._next = self._next.result(), self._pool.submit(self._clone)
        return taken

    def drop_later(self, name: str) -> None:
        self._drops.append(self._pool.submit(services.drop_database, self._admin_url, name))

    def close(self) -> None:
        spare, _ = self._next.result()
        self.drop_later(spare)
        for drop in self._drops:
            drop.result()
        self._pool.shutdown()


@pytest.fixture(scope="session")
def _databases(admin_url: str, template_database: str) -> Iterator[_Databases]:
    databases = _Databases(admin_url, template_database)
    yield databases
    databases.close()


@pytest.fixture
def database_url(_databases: _Databases) -> Iterator[str]:
    name, url = _databases.take()
    yield url
    _databases.drop_later(name)


_LOCK_KEY = "chorus:test-session-lock"
_OURS = (b"celery", b"_kombu", b"unacked", b"chorus:")
_QUEUES = {b"control", b"io", b"scripts", b"ai"}


def empty_redis_db(base_url: str, *, exclude: str | None = None) -> str:
    """A Redis database number of our own (rq's approach), claimed with a lock key so that test sessions
    running at the same time (CI and a developer, parallel workers) never share a broker database."""
    root = base_url.rsplit("/", 1)[0] if base_url.count("/") > 2 else base_url
    preferred = None if exclude else os.environ.get("CHORUS_TEST_REDIS_DB")
    candidates = [int(preferred)] if preferred else list(range(15, 0, -1))
    for number in candidates:
        url = f"{root}/{number}"
        if url == exclude:
            continue
        client = redis.Redis.from_url(url)
        try:
            # SET NX with a TTL: the claim vanishes by itself if this session dies without cleaning up.
            if not client.set(_LOCK_KEY, os.getpid(), nx=True, ex=3600):
                continue
            keys = [k for k in client.scan_iter(count=1000) if k != _LOCK_KEY.encode()]
            if all(k.startswith(_OURS) or k in _QUEUES for k in keys):
                # Empty, or left by a crashed test session (Celery's and our keys only): ours now.
                if keys:
                    client.delete(*keys)
                return url
            client.delete(_LOCK_KEY)  # somebody else's data: leave this database alone
        finally:
            client.close()
    raise RuntimeError(f"no free Redis database on {root}; set CHORUS_TEST_REDIS_DB")


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    url = empty_redis_db(services.redis_url())
    yield url
    flush_redis_db(url)


def flush_redis_db(url: str) -> None:
    """Empty a database this session claimed, releasing the claim with it."""
    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests that need Debian's `prometheus` run where it is installed (CI installs it); elsewhere they are
    deselected with a notice, so a fresh machine with only Python runs the rest of the suite."""
    _deselect_without_chromium(config, items)
    if shutil.which("prometheus"):
        return
    needing = [item for item in items if "needs_prometheus" in item.keywords]
    if needing:
        config.hook.pytest_deselected(items=needing)
        items[:] = [item for item in items if "needs_prometheus" not in item.keywords]
        # The harness says what it did not run, and why.
        print(
            f"\nchorus: {len(needing)} test(s) deselected: no `prometheus` binary on PATH "
            "(apt-get install prometheus; .ci/run installs it)",
            file=sys.stderr,
        )


#: Debian's Chromium, which the console's browser tests drive through Playwright (nothing is downloaded).
CHROMIUM = "/usr/bin/chromium"


def _deselect_without_chromium(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`needs_chromium` tests, like `needs_prometheus` ones, are deselected with a notice where it is missing."""
    if os.path.exists(CHROMIUM):
        return
    needing = [item for item in items if "needs_chromium" in item.keywords]
    if needing:
        config.hook.pytest_deselected(items=needing)
        items[:] = [item for item in items if "needs_chromium" not in item.keywords]
        print(
            f"\nchorus: {len(needing)} test(s) deselected: no {CHROMIUM} "
            "(apt-get install chromium chromium-driver; .ci/run installs them)",
            file=sys.stderr,
        )


@pytest.fixture(scope="session", autouse=True)
def _relocated_clusters_removed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """As root, a cluster whose data directory PostgreSQL's account cannot reach (pytest's temporary root is
    0700) is kept under /var/lib/chorus; delete those of this session's temporary directories."""
    yield
    services.remove_relocated_clusters(tmp_path_factory.getbasetemp())


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    services.stop_throwaway_servers()
