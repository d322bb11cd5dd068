"""Kestra's metric repository on a real PostgreSQL: a successful metric.Publish records its metrics with its task
run's transaction (core/src/test/java/io/kestra/plugin/core/metric/PublishTest.java), a failed one records none."""

from __future__ import annotations

import pytest

from orchestrator.engine import Engine, TaskRunCoordinates, flows
from orchestrator.store import metric_entries
from orchestrator.store.database import transaction
from tests.harness.engines import EngineFactory
from workers.runtime import run_claimed

FLOW = """
id: metrics
namespace: tests.metrics
tasks:
  - id: publish
    type: io.kestra.plugin.core.metric.Publish
    metrics:
      - type: counter
        name: rows
        value: 3
        tags: {source: api}
      - type: timer
        name: took
        value: PT1.5S
  - id: broken
    type: io.kestra.plugin.core.metric.Publish
    metrics:
      - type: counter
        name: never
        value: not-a-number
"""


@pytest.fixture
def engine(database_url: str, idle_broker_url: str, engine_factory: EngineFactory) -> Engine:
    engine = engine_factory(database_url, broker_url=idle_broker_url, pool_size=4)
    engine.deploy_flow(FLOW, actor="test")
    return engine


def test_a_successful_publish_records_its_metrics_and_a_failed_one_none(engine: Engine) -> None:
    with transaction(engine.sessions) as session:
        row = flows.live_revision(engine, session, "tests.metrics", "metrics", None)
        execution_id = engine.create_execution(session, row, engine.flow_of(row), {}, [], actor="test").id
    runs = [TaskRunCoordinates(execution_id, t, None, None, 1) for t in ("publish", "broken")]
    engine.run_inline(
        execution_id,
        runs,
        join=True,
        skip_runs=False,
        owner="w1",
        celery_task_id="m1",
        requested_by=None,
        run=lambda claimed: run_claimed(claimed, engine),
    )

    with engine.sessions() as session:
        recorded = metric_entries.metrics_of(session, execution_id)
    assert [(m.task_id, m.type, m.name, m.value, m.tags) for m in recorded] == [
        ("publish", "counter", "rows", 3.0, {"source": "api"}),
        ("publish", "timer", "took", 1.5, {}),
    ]
    assert {(m.namespace, m.flow_id, m.tenant) for m in recorded} == {("tests.metrics", "metrics", "main")}
