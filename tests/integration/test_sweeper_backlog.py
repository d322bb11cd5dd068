"""The sweeper re-sends executions that stopped progressing, but not merely queued ones while a backlog waits."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from sqlalchemy import text

from orchestrator.engine import Engine
from orchestrator.engine.sweeper import Sweeper
from tests.conftest import empty_redis_db, flush_redis_db
from tests.harness import services
from tests.harness.engines import EngineFactory

FLOW = "id: queued\nnamespace: sweeper.backlog\ntasks:\n  - id: t\n    type: Log\n    message: hi\n"


@pytest.fixture(scope="module")
def broker_url(redis_url: str) -> Iterator[str]:
    """A Redis database of its own, which no worker of the session consumes (the queues must stay as sent)."""
    url = empty_redis_db(services.redis_url(), exclude=redis_url)
    yield url
    flush_redis_db(url)


@pytest.fixture
def engine(database_url: str, broker_url: str, engine_factory: EngineFactory) -> Engine:
    # The queues it fills go with `broker_url`, flushed after the test.
    return engine_factory(database_url, broker_url=broker_url, stale_after_s=1, stale_backlog_factor=10)


def _age(engine: Engine, execution_id: str, seconds: int) -> None:
    with engine.sessions() as session, session.begin():
        session.execute(
            text("UPDATE executions SET updated_at = now() - make_interval(secs => :s) WHERE id = :id"),
            {"s": seconds, "id": execution_id},
        )


def test_a_queued_execution_is_not_sent_again_while_its_queue_has_a_backlog(engine: Engine, broker_url: str) -> None:
    engine.deploy_flow(FLOW, actor="test")
    execution = engine.submit("sweeper.backlog", "queued", inputs={}, actor="test")  # no worker: it stays queued
    broker = redis.Redis.from_url(broker_url)
    queued = broker.llen("control")
    assert queued >= 1

    _age(engine, execution.id, 5)  # stale by `stale_after_s`, not by ten times it
    assert Sweeper(engine).sweep_once() == 0
    assert broker.llen("control") == queued  # nothing added to the backlog

    _age(engine, execution.id, 11)  # stale even by the backlog's measure
    assert Sweeper(engine).sweep_once() == 1
    assert broker.llen("control") > queued
    broker.close()


def test_a_stale_execution_is_sent_again_when_no_message_waits(engine: Engine, broker_url: str) -> None:
    engine.deploy_flow(FLOW, actor="test")
    execution = engine.submit("sweeper.backlog", "queued", inputs={}, actor="test")
    broker = redis.Redis.from_url(broker_url)
    broker.delete("control")  # the message is lost (a Redis restart that kept nothing)

    _age(engine, execution.id, 5)
    assert Sweeper(engine).sweep_once() == 1
    assert broker.llen("control") >= 1
    broker.close()
