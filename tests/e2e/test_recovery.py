"""Postgres is the truth: duplicates are absorbed by the claim, lost messages are re-sent by the sweeper."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from celery import Celery

from orchestrator.celery_app import RUN_TASK_RUN, create_celery_app
from orchestrator.database import make_engine, make_sessionmaker
from orchestrator.engine import Engine
from orchestrator.settings import load_settings
from tests.conftest import empty_redis_db, flush_redis_db
from tests.e2e.conftest import Stack

ONE_LOG = """
id: one-log
namespace: {ns}
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: "hello once"
"""


@pytest.fixture
def celery_app(stack: Stack) -> Iterator[Celery]:
    app = create_celery_app(stack.settings)
    yield app
    app.close()


def test_a_duplicate_delivery_of_a_finished_task_run_does_nothing(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str, celery_app: Celery
) -> None:
    deploy_flow(ONE_LOG)
    execution = stack.wait_for_state(stack.run(unique_namespace, "one-log")["id"])
    audit_before = stack.api.get(f"/audit/executions/{execution['id']}").json()["events"]

    results = [
        celery_app.send_task(
            RUN_TASK_RUN, kwargs={"execution_id": execution["id"], "task_id": "hello", "attempt": 1}, queue="control"
        )
        for _ in range(2)
    ]

    assert [r.get(timeout=20) for r in results] == ["stop", "stop"]
    after = stack.api.get(f"/executions/{execution['id']}").json()
    assert len(after["taskRunList"]) == 1
    assert [log["message"] for log in stack.api.get(f"/logs/{execution['id']}").json()] == ["hello once"]
    assert stack.api.get(f"/audit/executions/{execution['id']}").json()["events"] == audit_before


def test_an_execution_whose_messages_were_lost_is_finished_by_the_sweeper(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str, redis_url: str
) -> None:
    deploy_flow(ONE_LOG)
    # An engine whose broker nobody consumes: its dispatch is lost, exactly like a Redis wipe.
    nowhere = empty_redis_db(redis_url.rsplit("/", 1)[0], exclude=redis_url)
    settings = load_settings(database_url=stack.settings.database_url, broker_url=nowhere)
    db = make_engine(settings.database_url, pool_size=1)
    app = create_celery_app(settings)
    try:
        engine = Engine(settings, make_sessionmaker(db), app)
        created = engine.submit(unique_namespace, "one-log", inputs={}, actor="test")
    finally:
        app.close()
        db.dispose()
        flush_redis_db(nowhere)

    execution = stack.wait_for_state(created.id, timeout_s=30)

    assert execution["state"]["current"] == "SUCCESS"
    audit = stack.api.get(f"/audit/executions/{created.id}").json()
    assert audit["verified"] is True
