"""Task handlers run on their production path (`run_claimed`) against a real database and the fake servers.

A task run is "claimed" here without Celery: the flow is parsed, the variables are built as the engine
builds them, and `run_claimed` runs the handler exactly as a worker does.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import Engine as DbEngine

from orchestrator.celery_app import create_celery_app
from orchestrator.core.ids import new_id, task_run_id
from orchestrator.core.parse import parse_flow
from orchestrator.engine import ClaimedTaskRun, Engine, TaskOutcome, TaskRunCoordinates
from orchestrator.settings import load_settings
from orchestrator.store.database import make_engine, make_sessionmaker
from orchestrator.triggers.wiring import build_engine
from tests.harness import services
from workers.runtime import run_claimed


@pytest.fixture(scope="session")
def worker_database(admin_url: str, template_database: str) -> Iterator[str]:
    name = services.unique_database_name("workers")
    url = services.create_database(admin_url, name, template=template_database)
    yield url
    services.drop_database(admin_url, name)


@pytest.fixture(scope="session")
def worker_engine(worker_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    settings = load_settings(database_url=worker_database, data_dir=tmp_path_factory.mktemp("data"))
    db: DbEngine = make_engine(settings.database_url, pool_size=2)
    try:
        yield build_engine(settings, make_sessionmaker(db), create_celery_app(settings))
    finally:
        db.dispose()


def claim(
    source: str,
    task_id: str,
    *,
    trigger: dict[str, Any] | None = None,
    outputs: dict[str, Any] | None = None,
    execution_id: str | None = None,
    attempt: int = 1,
) -> ClaimedTaskRun:
    """A claimed attempt of `task_id` in a fresh execution of the flow in `source`."""
    flow = parse_flow(source)
    task = flow.task(task_id)
    execution_id = execution_id or new_id()
    at = TaskRunCoordinates(execution_id, task_id, None, None, attempt)
    variables = {
        "flow": {"id": flow.id, "namespace": flow.namespace, "revision": 1, "tenantId": "main"},
        "execution": {"id": execution_id, "startDate": "2026-01-01T00:00:00Z", "originalId": execution_id},
        "inputs": {},
        "outputs": outputs or {},
        "vars": dict(flow.variables),
        "labels": {},
        "trigger": trigger or {},
        "envs": {},
        "globals": {},
        "task": {"id": task.id, "type": task.type_name},
        "taskrun": {"id": task_run_id(execution_id, task_id, None, None), "attemptsCount": attempt},
    }
    return ClaimedTaskRun(at, "test-worker", flow, task, variables)


Runner = Callable[..., TaskOutcome]


@pytest.fixture
def run_task(worker_engine: Engine) -> Runner:
    """Run one task of a flow (given as YAML) through `run_claimed`; return its outcome."""

    def run(source: str, task_id: str, **kwargs: Any) -> TaskOutcome:
        return run_claimed(claim(source, task_id, **kwargs), worker_engine)

    return run


SetSecrets = Callable[..., None]


@pytest.fixture
def secrets(monkeypatch: pytest.MonkeyPatch) -> SetSecrets:
    """Set SECRET_<NAME> variables (base64, as Kestra reads them) for this test."""

    def set_secrets(**values: str) -> None:
        for name, value in values.items():
            monkeypatch.setenv(f"SECRET_{name}", base64.b64encode(value.encode()).decode())

    return set_secrets


def one_task_flow(task_yaml: str, *, flow_id: str = "t", task_id: str = "t", extra: str = "") -> str:
    """A flow around one task (`task_yaml` is the task's mapping, indented by 4 spaces under `tasks:`)."""
    return f"id: {flow_id}\nnamespace: tests.workers\ntasks:\n  - id: {task_id}\n{task_yaml}\n{extra}"
