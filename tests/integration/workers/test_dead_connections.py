"""A worker's engine pings no connection before use; its connections dying (a database restart, a failover)
costs it one failed transaction, and an attempt that ran is still recorded (`_until_recorded`)."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from celery import Celery

from orchestrator.celery_app import create_celery_app
from orchestrator.core.states import State
from orchestrator.engine import DATABASE_UNAVAILABLE, Engine, TaskOutcome, TaskRunCoordinates, Verdict
from orchestrator.settings import load_settings
from orchestrator.store.pre_ping import has_pre_ping
from tests.harness import services
from tests.harness.round_trips import count_round_trips, sql_engine_of
from workers import runtime

FLOW = """
id: dead_connections
namespace: tests.workers
tasks:
  - id: fetch
    type: io.kestra.plugin.core.http.Request
    uri: http://127.0.0.1:9/nothing
"""


@pytest.fixture
def worker_engine(database_url: str, redis_url: str) -> Iterator[Engine]:
    settings = load_settings(database_url=database_url, broker_url=redis_url)
    app: Celery = create_celery_app(settings)
    runtime.register_tasks(app, settings)
    runtime._holder.reset()
    engine = runtime.current_engine()
    try:
        yield engine
    finally:
        sql_engine_of(engine).dispose()
        runtime._holder.reset()
        app.close()


def _kill_connections(database_url: str) -> int:
    """What a database restart does to a worker's pool: every connection to the test database ends."""
    name = database_url.rsplit("/", 1)[1]
    with psycopg.connect(services.psycopg_url(services.postgres_admin_url()), autocommit=True) as admin:
        killed = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        ).fetchone()
    return int(killed[0]) if killed else 0


def test_a_worker_engine_sends_no_pre_ping(worker_engine: Engine) -> None:
    assert not has_pre_ping(sql_engine_of(worker_engine))
    worker_engine.deploy_flow(FLOW, actor="test")

    with count_round_trips(sql_engine_of(worker_engine)) as count:
        worker_engine.task_run_state("nothing")

    assert count.pings == 0 and len(count.statements) == 1


def test_an_attempt_that_ran_is_recorded_although_the_pool_connections_died(
    worker_engine: Engine, database_url: str
) -> None:
    row = worker_engine.deploy_flow(FLOW, actor="test")
    execution_id = worker_engine.submit(row.namespace, row.flow_id, inputs={}, actor="test").id
    at = TaskRunCoordinates(execution_id, "fetch", None, None, 1)
    claimed = worker_engine.claim(at, owner="w1", celery_task_id="m1")
    assert claimed is not None
    assert _kill_connections(database_url) >= 1

    verdict = runtime._until_recorded(
        lambda: worker_engine.finish(claimed, TaskOutcome(State.SUCCESS, outputs={"code": 200})), "fetch"
    )

    assert verdict == Verdict.OK
    assert worker_engine.task_run_state(at.task_run_id) == "SUCCESS"


def test_a_dead_connection_fails_one_transaction_and_the_next_gets_a_live_one(
    worker_engine: Engine, database_url: str
) -> None:
    worker_engine.deploy_flow(FLOW, actor="test")
    assert _kill_connections(database_url) >= 1

    with pytest.raises(DATABASE_UNAVAILABLE):
        worker_engine.task_run_state("nothing")  # the pooled connection is dead: no ping found it out

    assert worker_engine.task_run_state("nothing") is None  # the pool was invalidated: a fresh connection
