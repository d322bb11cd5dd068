"""A Redis password with `@:/#` works end to end through settings: Celery's broker and backend, queue depth."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from orchestrator.celery_app import create_celery_app
from orchestrator.observability.queue_depth import QueueDepthCollector
from orchestrator.settings import load_settings
from tests.integration.redis_server import redis_server

PASSWORD = "p@ss:w/rd#1"


@pytest.fixture
def guarded_redis() -> Iterator[int]:
    with redis_server(PASSWORD) as server:
        yield server.port


def test_workers_reach_a_broker_whose_password_holds_reserved_characters(
    guarded_redis: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHORUS_REDIS_PASSWORD", PASSWORD)
    monkeypatch.setenv("CHORUS_BROKER_URL", f"redis://127.0.0.1:{guarded_redis}/0")
    settings = load_settings()
    app = create_celery_app(settings)

    app.send_task("chorus.probe", args=["x"], queue="control")
    app.backend.store_result("probe-id", {"ok": True}, "SUCCESS")
    depth = {s.labels["pool"]: s.value for f in QueueDepthCollector(settings.broker_url, ["control"]).collect()
             for s in f.samples if s.name == "chorus_queue_depth_messages"}  # fmt: skip

    assert depth == {"control": 1.0}
    assert app.AsyncResult("probe-id").get(timeout=5) == {"ok": True}
    with app.connection_for_read() as connection:
        message = connection.SimpleQueue("control", no_ack=True).get(timeout=5)
    assert message.headers["task"] == "chorus.probe"


def test_without_the_password_the_broker_refuses_so_the_password_above_is_what_let_it_in(
    guarded_redis: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CHORUS_REDIS_PASSWORD", raising=False)
    settings = load_settings(broker_url=f"redis://127.0.0.1:{guarded_redis}/0")

    with pytest.raises(redis.AuthenticationError):
        redis.Redis.from_url(settings.broker_url).ping()
