"""The age of each pool's oldest waiting message, read from a real Redis broker at scrape time."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
import redis

from orchestrator.celery_app import SENT_AT_HEADER, create_celery_app
from orchestrator.observability.queue_depth import QueueDepthCollector
from orchestrator.settings import Settings, load_settings
from tests.integration.redis_server import redis_server

PASSWORD = "queue-age"


@pytest.fixture
def settings() -> Iterator[Settings]:
    with redis_server(PASSWORD) as server:
        yield load_settings(broker_url=f"redis://127.0.0.1:{server.port}/0", redis_password=PASSWORD)


def _read(settings: Settings) -> dict[tuple[str, str], float]:
    collector = QueueDepthCollector(settings.broker_url, ["control", "ai"])
    try:
        return {(s.name, s.labels["pool"]): s.value for f in collector.collect() for s in f.samples}
    finally:
        collector.close()


def test_the_oldest_message_of_each_pool_has_its_age_and_an_empty_pool_zero(settings: Settings) -> None:
    app = create_celery_app(settings)
    app.send_task("chorus.probe", args=["first"], queue="ai")
    time.sleep(1.2)
    app.send_task("chorus.probe", args=["second"], queue="ai")

    samples = _read(settings)

    assert samples[("chorus_queue_depth_messages", "ai")] == 2
    assert 1.0 <= samples[("chorus_queue_oldest_message_age_seconds", "ai")] < 30  # the first one's, not the second's
    assert samples[("chorus_queue_oldest_message_age_seconds", "control")] == 0


def test_every_message_chorus_sends_carries_its_send_time(settings: Settings) -> None:
    before = time.time()
    create_celery_app(settings).send_task("chorus.probe", queue="control")
    raw = redis.Redis.from_url(settings.broker_url).lindex("control", -1)

    assert raw is not None
    assert before <= json.loads(raw)["headers"][SENT_AT_HEADER] <= time.time()


def test_a_message_without_the_stamp_leaves_the_age_unknown_rather_than_zero(settings: Settings) -> None:
    client = redis.Redis.from_url(settings.broker_url)
    client.lpush("control", json.dumps({"body": "", "headers": {"task": "other.sender"}, "properties": {}}))
    client.lpush("ai", b"not json at all")

    samples = _read(settings)

    assert samples[("chorus_queue_depth_messages", "control")] == 1
    assert ("chorus_queue_oldest_message_age_seconds", "control") not in samples
    assert ("chorus_queue_oldest_message_age_seconds", "ai") not in samples
