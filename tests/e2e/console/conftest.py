"""The console's browser stack: a real `chorus server` with login required, a real worker, headless Chromium.

One server, one worker and one browser for the whole session (every console test module) keep the
browser tests quick; each test opens its own browser context (its own cookies), as a separate person would.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from orchestrator.settings import load_settings
from tests.conftest import CHROMIUM, empty_redis_db, flush_redis_db
from tests.fakes.fixtures import secret_env
from tests.fakes.jira import JiraServer
from tests.fakes.openai_wire import OpenAIWire
from tests.harness import services
from tests.harness.cluster import Cluster
from tests.harness.waiting import wait_for_state

ADMIN = ("admin@chorus.test", "console-admin-pw")
#: Set to a directory (e.g. docs/screenshots) to keep the pages' screenshots; by default they go to a temp dir.
SCREENSHOTS_ENV = "CHORUS_CONSOLE_SCREENSHOTS"


@dataclass
class ConsoleStack:
    url: str
    admin: httpx.Client  #: the API as the bootstrap admin (Basic)
    screenshots: Path
    database_url: str

    def deploy(self, source: str) -> dict[str, Any]:
        response = self.admin.post("/flows", content=source, headers={"Content-Type": "application/x-yaml"})
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    def wait_for_state(
        self, execution_id: str, states: set[str] | None = None, timeout_s: float = 30
    ) -> dict[str, Any]:
        return wait_for_state(self.admin, execution_id, states, timeout_s=timeout_s)


@pytest.fixture(scope="session")
def console_stack(
    admin_url: str,
    template_database: str,
    redis_url: str,
    openai_wire: OpenAIWire,
    jira_server: JiraServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ConsoleStack]:
    # A broker database of its own: the shared e2e stack's worker must not take this stack's tasks.
    broker = empty_redis_db(services.redis_url(), exclude=redis_url)
    name = services.unique_database_name("ui")
    database_url = services.create_database(admin_url, name, template=template_database)
    data_dir = tmp_path_factory.mktemp("console-data")
    env = {
        "CHORUS_DATABASE_URL": database_url,
        "CHORUS_BROKER_URL": broker,
        "CHORUS_DATA_DIR": str(data_dir),
        "CHORUS_ADMIN_USERNAME": ADMIN[0],
        "CHORUS_ADMIN_PASSWORD": ADMIN[1],
        "CHORUS_SWEEP_INTERVAL_S": "0.2",
        "CHORUS_WORKER_CONCURRENCY": "2",
        "CHORUS_METRICS_PORT": "0",
        **secret_env(openai_wire, jira_server),
    }
    pools = load_settings(database_url=database_url, broker_url=broker).pools
    shots = Path(os.environ.get(SCREENSHOTS_ENV) or tmp_path_factory.mktemp("screenshots"))
    shots.mkdir(parents=True, exist_ok=True)
    try:
        with Cluster(env) as cluster, httpx.Client(base_url=cluster.api_url, auth=ADMIN, timeout=30) as admin:
            cluster.start([",".join(pools)], concurrency=2)
            yield ConsoleStack(cluster.url, admin, shots, database_url)
    finally:
        services.drop_database(admin_url, name)
        flush_redis_db(broker)


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # Debian's Chromium, never a downloaded one; no sandbox because CI runs as root.
        instance = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            yield instance
        finally:
            instance.close()


@pytest.fixture
def new_page(browser: Any, console_stack: ConsoleStack) -> Iterator[Callable[[], Any]]:
    """`new_page()`: a page in a fresh browser context; uncaught script errors fail the test."""
    contexts: list[Any] = []
    errors: list[str] = []

    def make() -> Any:
        context = browser.new_context(viewport={"width": 1360, "height": 860}, base_url=console_stack.url)
        context.set_default_timeout(30_000)  # generous for a loaded CI machine; waits end as soon as they can
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        return page

    yield make
    for context in contexts:
        context.close()
    assert errors == [], f"uncaught errors in the console's scripts: {errors}"
