"""Realtime triggers against the machine's real Redis and RabbitMQ: one execution per message, none twice,
none lost when a consumer dies between commit and acknowledgement, and no reading past a concurrency limit."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from kombu import Connection  # type: ignore[attr-defined]  # kombu ships no type hints
from sqlalchemy import select

from orchestrator.celery_app import create_celery_app
from orchestrator.core.errors import FlowInvalid
from orchestrator.engine import Engine, events
from orchestrator.observability.metrics import metrics
from orchestrator.settings import load_settings
from orchestrator.store.database import make_engine, make_sessionmaker
from orchestrator.store.tables import ExecutionRow
from orchestrator.triggers.realtime import RealtimeRunner
from orchestrator.triggers.realtime_amqp import AmqpQueueSource
from orchestrator.triggers.realtime_redis import RedisStreamSource
from orchestrator.triggers.wiring import build_engine

AMQP_URL = os.environ.get("CHORUS_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
N = 200

FLOW = """
id: orders
namespace: tests.realtime
inputs:
  - id: order
    type: STRING
tasks:
  - id: log
    type: io.kestra.plugin.core.log.Log
    message: "{{{{ inputs.order }}}}"
{concurrency}
triggers:
  - id: incoming
{trigger}
    inputs:
      order: "{{{{ {field} }}}}"
"""


@pytest.fixture
def engine(database_url: str, idle_broker_url: str) -> Iterator[Engine]:
    settings = load_settings(database_url=database_url, broker_url=idle_broker_url)
    db = make_engine(database_url, pool_size=4)
    engine = build_engine(settings, make_sessionmaker(db), create_celery_app(settings))
    yield engine
    engine.celery.close()
    db.dispose()


@pytest.fixture
def stream(redis_url: str) -> Iterator[tuple[redis.Redis, str]]:
    client = redis.Redis.from_url(redis_url)
    key = f"tests:realtime:{uuid.uuid4().hex}"
    yield client, key
    client.delete(key)
    client.close()


@pytest.fixture
def amqp_queue() -> Iterator[tuple[Any, str]]:
    connection: Any = Connection(AMQP_URL, connect_timeout=5)  # type: ignore[no-untyped-call]
    try:
        channel = connection.channel()
    except OSError as e:
        pytest.fail(f"no RabbitMQ at {AMQP_URL} ({e}): the realtime AMQP tests need one (CHORUS_TEST_AMQP_URL)")
    name = f"chorus-test-{uuid.uuid4().hex}"
    channel.queue_declare(name, durable=False, auto_delete=False)
    yield connection, name
    connection.channel().queue_delete(name)
    connection.release()


def _deploy_stream(engine: Engine, redis_url: str, key: str, concurrency: str = "", when: str = "") -> None:
    trigger = (
        f"    type: io.chorus.trigger.RedisStream\n    url: {redis_url}\n    key: {key}\n"
        f"    group: chorus\n    startId: '0'{when}"
    )
    engine.deploy_flow(FLOW.format(concurrency=concurrency, trigger=trigger, field="trigger.value.order"), actor="t")


def _deploy_amqp(engine: Engine, queue: str) -> None:
    trigger = f"    type: io.kestra.plugin.amqp.RealtimeTrigger\n    url: {AMQP_URL}\n    queue: {queue}"
    engine.deploy_flow(FLOW.format(concurrency="", trigger=trigger, field="trigger.data"), actor="t")


def _orders(engine: Engine) -> list[str]:
    with engine.sessions() as session:
        return [row.inputs["order"] for row in session.scalars(select(ExecutionRow)).all()]


def _drain(runner: RealtimeRunner) -> None:
    for _ in range(1000):
        if runner.poll_once() == 0:
            return
    raise AssertionError("the runner never ran dry")


def _lag(namespace: str, flow: str, trigger: str) -> float:
    value: float = metrics().realtime_lag.labels(namespace, flow, trigger)._value.get()
    return value


def test_every_stream_entry_starts_one_execution_and_is_acknowledged(
    engine: Engine, redis_url: str, stream: tuple[redis.Redis, str]
) -> None:
    client, key = stream
    _deploy_stream(engine, redis_url, key)
    for i in range(N):
        client.xadd(key, {"order": f"o-{i}"})
    runner = RealtimeRunner(engine, batch_size=50)

    _drain(runner)
    runner.close()

    orders = _orders(engine)
    assert sorted(orders) == sorted(f"o-{i}" for i in range(N))
    assert client.xpending(key, "chorus")["pending"] == 0
    assert _lag("tests.realtime", "orders", "incoming") == 0


def test_a_stream_consumer_dying_between_commit_and_ack_loses_and_repeats_nothing(
    engine: Engine, redis_url: str, stream: tuple[redis.Redis, str]
) -> None:
    client, key = stream
    _deploy_stream(engine, redis_url, key)
    for i in range(N):
        client.xadd(key, {"order": f"o-{i}"})
    runner = RealtimeRunner(engine)
    [(flow_row, flow, trigger)] = list(runner._triggers())
    dying = RedisStreamSource({"url": redis_url, "key": key, "group": "chorus", "startId": "0"})
    read = dying.read(80)
    for message in read[:40]:  # committed, then the consumer dies before acknowledging anything
        events.start_once(engine, f"RedisStream:{message.id}", flow_row, flow, trigger, message.variables, audit={})
    dying.close()

    _drain(runner)

    orders = _orders(engine)
    assert len(orders) == N and len(set(orders)) == N
    assert client.xpending(key, "chorus")["pending"] == 0


def test_a_reached_concurrency_limit_leaves_the_messages_in_the_stream(
    engine: Engine, redis_url: str, stream: tuple[redis.Redis, str]
) -> None:
    client, key = stream
    _deploy_stream(engine, redis_url, key, concurrency="concurrency:\n  limit: 3")
    for i in range(10):
        client.xadd(key, {"order": f"o-{i}"})
    runner = RealtimeRunner(engine)

    _drain(runner)  # nothing runs the executions: they stay RUNNING and hold the three slots

    assert len(_orders(engine)) == 3
    assert _lag("tests.realtime", "orders", "incoming") == 7


def test_every_amqp_message_starts_one_execution_even_when_sent_twice(
    engine: Engine, amqp_queue: tuple[Any, str]
) -> None:
    connection, queue = amqp_queue
    _deploy_amqp(engine, queue)
    producer = connection.Producer()
    for i in range(N):
        producer.publish(f"o-{i}", routing_key=queue, message_id=f"m-{i}", serializer=None, content_type="text/plain")
    producer.publish("o-0", routing_key=queue, message_id="m-0", content_type="text/plain")  # a redelivery
    runner = RealtimeRunner(engine, batch_size=50)

    _drain(runner)
    runner.close()

    orders = _orders(engine)
    assert sorted(orders) == sorted(f"o-{i}" for i in range(N))
    assert _lag("tests.realtime", "orders", "incoming") == 0


def test_an_amqp_consumer_dying_between_commit_and_ack_loses_and_repeats_nothing(
    engine: Engine, amqp_queue: tuple[Any, str]
) -> None:
    connection, queue = amqp_queue
    _deploy_amqp(engine, queue)
    producer = connection.Producer()
    for i in range(N):
        producer.publish(f"o-{i}", routing_key=queue, message_id=f"m-{i}", content_type="text/plain")
    runner = RealtimeRunner(engine)
    [(flow_row, flow, trigger)] = list(runner._triggers())
    dying = AmqpQueueSource({"url": AMQP_URL, "queue": queue})
    read = dying.read(80)
    for message in read[:40]:
        events.start_once(engine, f"AmqpRealtime:{message.id}", flow_row, flow, trigger, message.variables, audit={})
    dying.close()  # the connection goes without acknowledging: the broker delivers the 80 again

    _drain(runner)
    runner.close()

    orders = _orders(engine)
    assert len(orders) == N and len(set(orders)) == N


def test_a_message_its_when_refuses_is_acknowledged_and_starts_nothing(
    engine: Engine, redis_url: str, stream: tuple[redis.Redis, str]
) -> None:
    client, key = stream
    _deploy_stream(engine, redis_url, key, when="\n    when: \"{{ trigger.value.order != 'o-1' }}\"")
    for i in range(3):
        client.xadd(key, {"order": f"o-{i}"})
    runner = RealtimeRunner(engine)

    _drain(runner)
    runner.close()

    assert sorted(_orders(engine)) == ["o-0", "o-2"]
    assert client.xpending(key, "chorus")["pending"] == 0


def test_a_stream_trigger_without_a_group_is_refused_at_deploy(engine: Engine) -> None:
    flow = FLOW.format(
        concurrency="", trigger="    type: io.chorus.trigger.RedisStream\n    url: redis://x\n    key: k", field="x"
    )
    with pytest.raises(FlowInvalid) as caught:
        engine.deploy_flow(flow, actor="t")
    assert [e.path for e in caught.value.errors] == ["triggers[0].group"]
