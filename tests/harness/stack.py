"""The e2e stack: a real `chorus server` (uvicorn) and a real Celery worker, as processes, per session."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from orchestrator.cli.embedded import free_port
from orchestrator.engine.accounts import Binding
from orchestrator.settings import Settings, load_settings
from tests.fakes.fixtures import secret_env
from tests.fakes.jira import JiraServer
from tests.fakes.openai_wire import OpenAIWire
from tests.harness import services
from tests.harness.cluster import Cluster
from tests.harness.waiting import wait_for_state

__all__ = ["Stack", "deploy_flow", "secured_api_over", "stack", "unique_namespace"]


@dataclass
class Stack:
    api: httpx.Client
    settings: Settings
    env: dict[str, str]
    cluster: Cluster  #: its server and worker; a test may start (and kill) workers of extra pools in it

    def deploy(self, source: str) -> dict[str, Any]:
        response = self.api.post("/flows", content=source, headers={"Content-Type": "application/x-yaml"})
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    def run(self, namespace: str, flow_id: str, **inputs: str) -> dict[str, Any]:
        response = self.api.post(f"/executions/{namespace}/{flow_id}", files={k: (None, v) for k, v in inputs.items()})
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    def wait_for_state(
        self, execution_id: str, states: set[str] | None = None, *, timeout_s: float = 30
    ) -> dict[str, Any]:
        """The execution once its state is one of `states` (default: any terminal state)."""
        return wait_for_state(self.api, execution_id, states, timeout_s=timeout_s)

    def run_to_end(self, namespace: str, flow_id: str, *, timeout_s: float = 60, **inputs: str) -> dict[str, Any]:
        """Start an execution and return it once it has ended."""
        return self.wait_for_state(self.run(namespace, flow_id, **inputs)["id"], timeout_s=timeout_s)


@contextmanager
def secured_api_over(
    stack: Stack, admin: tuple[str, str], users: Mapping[tuple[str, str], list[Binding]]
) -> Iterator[TestClient]:
    """The API with authentication on, over the stack's database and broker (its worker runs what it sends).

    `admin` is the (username, password) of the configured administrator; `users` maps each further
    (username, password) to its role bindings.
    """
    settings = load_settings(
        database_url=stack.settings.database_url,
        broker_url=stack.settings.broker_url,
        admin_username=admin[0],
        admin_password=admin[1],
    )
    with TestClient(create_app(settings, sweeper=False), base_url="http://127.0.0.1") as client:
        accounts = client.app.state.accounts  # type: ignore[attr-defined]
        for (username, password), bindings in users.items():
            accounts.create_user(username, password, bindings, actor="test")
        yield client


@pytest.fixture(scope="session")
def stack(
    admin_url: str,
    template_database: str,
    redis_url: str,
    openai_wire: OpenAIWire,
    jira_server: JiraServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    name = services.unique_database_name("e2e")
    data_dir = tmp_path_factory.mktemp("chorus-data")
    database_url = services.create_database(admin_url, name, template=template_database)
    port = free_port()
    env = {
        "CHORUS_DATABASE_URL": database_url,
        "CHORUS_BROKER_URL": redis_url,
        "CHORUS_PORT": str(port),
        "CHORUS_DATA_DIR": str(data_dir),  # internal storage shared by the server and the workers
        "ENV_CHORUS_E2E": "from the environment",  # `envs.chorus_e2e` in flows
        "CHORUS_GLOBALS": '{"team": "platform", "nested": {"n": 2}}',  # `globals.*` in flows
        "CHORUS_SWEEP_INTERVAL_S": "0.2",
        "CHORUS_STALE_AFTER_S": "3",
        "CHORUS_HEARTBEAT_INTERVAL_S": "1",
        "CHORUS_WORKER_CONCURRENCY": "2",
        "CHORUS_METRICS_PORT": str(free_port()),
        # Flows' secret() calls (provider URL and key, Jira) resolve to the fake protocol servers.
        **secret_env(openai_wire, jira_server),
    }
    settings = load_settings(
        database_url=database_url, broker_url=redis_url, port=port, worker_concurrency=2, data_dir=data_dir
    )
    try:
        with Cluster(env, port=port) as cluster, httpx.Client(base_url=cluster.api_url, timeout=30) as client:
            cluster.start([",".join(settings.pools)], concurrency=2)
            yield Stack(client, settings, cluster.env, cluster)
    finally:
        services.drop_database(admin_url, name)


@pytest.fixture
def unique_namespace() -> str:
    return f"tests.e2e.n{uuid.uuid4().hex[:10]}"


@pytest.fixture
def deploy_flow(stack: Stack, unique_namespace: str) -> Callable[[str], dict[str, Any]]:
    """Deploy a flow written with `{ns}` as its namespace placeholder into this test's own namespace."""

    def deploy(source: str) -> dict[str, Any]:
        return stack.deploy(source.replace("{ns}", unique_namespace))

    return deploy
