"""Sends while Redis stops answering: each fails within the broker's socket timeouts, never waits on a result.

Redis sits behind a stallable proxy (tests/chaos/proxy.py): a stall holds every byte, so commands wait for an
answer that never comes, as across a network partition. The socket timeouts are shortened to 1 s so that the
test is quick; the bound is relative to them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import redis
from celery import Celery

from orchestrator.celery_app import create_celery_app
from orchestrator.celery_results import QUIET_REDIS_BACKEND, result_backend_url
from orchestrator.core.plan import Run
from orchestrator.engine.sending import send_plan
from orchestrator.settings import Settings
from tests.chaos.proxy import StallableProxy

SOCKET_TIMEOUT_S = 1.0
#: The publish (one read timeout), then Celery's publish retry policy (3 retries, each a reconnect that times
#: out), and scheduling slack for a loaded machine.
SEND_BOUND_S = 5 * SOCKET_TIMEOUT_S + 10


@pytest.fixture
def proxy(idle_broker_url: str) -> Iterator[StallableProxy]:
    port = urlsplit(idle_broker_url).port
    assert port is not None
    proxy = StallableProxy(port)
    yield proxy
    proxy.close()


def _app(idle_broker_url: str, proxy: StallableProxy) -> Celery:
    url = urlsplit(idle_broker_url)._replace(netloc=f"127.0.0.1:{proxy.port}").geturl()
    app = create_celery_app(Settings(broker_url=url, database_url="postgresql+psycopg://chorus@127.0.0.1/unused"))
    short = {"socket_timeout": SOCKET_TIMEOUT_S, "socket_connect_timeout": SOCKET_TIMEOUT_S}
    app.conf.broker_transport_options = {**app.conf.broker_transport_options, **short}
    return app


def _run(execution_id: str) -> Run:
    return Run(execution_id, "t1", None, None, 1, "io", enter=False)


def test_a_send_subscribes_to_no_result_channel(idle_broker_url: str, proxy: StallableProxy) -> None:
    client = redis.Redis.from_url(idle_broker_url)

    def subscribers(app: Celery) -> int:
        result = app.signature("chorus.run_task_run", kwargs={}, queue="io").apply_async()
        channel = f"celery-task-meta-{result.id}"
        return int(dict(client.pubsub_numsub(channel))[channel.encode()])

    # Celery's stock Redis backend subscribes the sender (the check sees it) ...
    stock = Celery("stock", broker=idle_broker_url, backend=idle_broker_url)
    assert subscribers(stock) == 1
    # ... Chorus's does not, and the message itself still goes out.
    assert subscribers(_app(idle_broker_url, proxy)) == 0
    assert client.llen("io") == 2


def test_a_first_send_while_redis_stalls_fails_within_the_socket_timeouts(
    idle_broker_url: str, proxy: StallableProxy
) -> None:
    """A process whose first send meets a stalled Redis (no connection yet): Celery's stock backend subscribed
    to the result first and, under its process-wide lock, retried 20 times with 120 s socket timeouts."""
    app = _app(idle_broker_url, proxy)
    proxy.stall()
    outcome: list[bool] = []
    began = time.monotonic()
    sender = threading.Thread(target=lambda: outcome.append(send_plan(app, _run("e2"), "e2")), daemon=True)
    sender.start()
    sender.join(SEND_BOUND_S)
    took = time.monotonic() - began
    assert outcome == [False], f"the send was still blocked after {took:.1f}s"
    proxy.resume()
    assert send_plan(app, _run("e3"), "e3")  # the next send reconnects


def test_only_redis_urls_get_the_quiet_backend() -> None:
    assert result_backend_url("redis://h:6379/1") == f"{QUIET_REDIS_BACKEND}+redis://h:6379/1"
    assert result_backend_url("rediss://h:6380/1") == f"{QUIET_REDIS_BACKEND}+rediss://h:6380/1"
    assert result_backend_url("db+postgresql://h/d") == "db+postgresql://h/d"
