"""`chorus scheduler` consumes realtime triggers: a consumer process killed mid-burst loses and repeats no
message once another takes over, and the lag it reports in /metrics returns to zero."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest
import redis
from sqlalchemy import func, select

from orchestrator.cli.embedded import free_port
from orchestrator.store.database import make_engine, make_sessionmaker
from orchestrator.store.tables import ExecutionRow
from tests.harness.cluster import start_chorus, stop_all

FLOW = """
id: burst
namespace: tests.realtime
inputs:
  - id: order
    type: STRING
tasks:
  - id: log
    type: io.kestra.plugin.core.log.Log
    message: "{{{{ inputs.order }}}}"
triggers:
  - id: incoming
    type: io.chorus.trigger.RedisStream
    url: {url}
    key: {key}
    group: chorus
    startId: "0"
    inputs:
      order: "{{{{ trigger.value.order }}}}"
"""

Scheduler = Callable[[], tuple[subprocess.Popen[bytes], int]]


@pytest.fixture
def scheduler(database_url: str, idle_broker_url: str) -> Iterator[Scheduler]:
    processes: list[subprocess.Popen[bytes]] = []

    def start() -> tuple[subprocess.Popen[bytes], int]:
        port = free_port()
        env = {
            **os.environ,
            "CHORUS_DATABASE_URL": database_url,
            "CHORUS_BROKER_URL": idle_broker_url,
            "CHORUS_METRICS_PORT": str(port),
            "CHORUS_SCHEDULER_INTERVAL_S": "1",
        }
        processes.append(start_chorus("scheduler", env))
        return processes[-1], port

    yield start
    stop_all(processes)


def _count(database_url: str) -> tuple[int, int]:
    db = make_engine(database_url, pool_size=1)
    try:
        with make_sessionmaker(db)() as session:
            total = session.scalar(select(func.count()).select_from(ExecutionRow)) or 0
            distinct = session.scalar(select(func.count(func.distinct(ExecutionRow.inputs["order"].astext)))) or 0
            return total, distinct
    finally:
        db.dispose()


def _wait_for(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"{what} within {timeout_s}s")


def _lag(port: int) -> float | None:
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    except httpx.HTTPError:
        return None
    for line in text.splitlines():
        if line.startswith("chorus_realtime_lag_messages{") and 'flow="burst"' in line:
            return float(line.rsplit(" ", 1)[1])
    return None


def _burst_across_a_kill(database_url: str, redis_url: str, scheduler: Scheduler, messages: int) -> None:
    from orchestrator.celery_app import create_celery_app
    from orchestrator.settings import load_settings
    from orchestrator.triggers.wiring import build_engine

    key = f"tests:realtime:{uuid.uuid4().hex}"
    settings = load_settings(database_url=database_url, broker_url=redis_url)
    db = make_engine(database_url, pool_size=1)
    app = create_celery_app(settings)
    try:
        build_engine(settings, make_sessionmaker(db), app).deploy_flow(
            FLOW.format(url=redis_url, key=key), actor="test"
        )
    finally:
        app.close()
        db.dispose()
    client = redis.Redis.from_url(redis_url)
    try:
        pipe = client.pipeline(transaction=False)
        for i in range(messages):
            pipe.xadd(key, {"order": f"o-{i}"})
        pipe.execute()
        first, _ = scheduler()
        _wait_for(lambda: _count(database_url)[0] >= messages // 4, 120, "a quarter of the burst started")
        os.killpg(first.pid, signal.SIGKILL)  # mid-burst: some entries read, maybe committed, not acknowledged
        first.wait(10)
        _, port = scheduler()
        _wait_for(lambda: _count(database_url)[0] >= messages, 300, f"{messages} executions")
        _wait_for(lambda: _lag(port) == 0, 30, "the lag back to zero")
        time.sleep(1)  # a duplicate, if any, would have been created by now
        assert _count(database_url) == (messages, messages)
        assert client.xpending(key, "chorus")["pending"] == 0
    finally:
        client.delete(key)
        client.close()


def test_a_killed_consumer_process_loses_and_repeats_no_entry(
    database_url: str, redis_url: str, scheduler: Scheduler
) -> None:
    _burst_across_a_kill(database_url, redis_url, scheduler, 200)


@pytest.mark.slow
def test_a_thousand_entries_across_a_consumer_kill_start_a_thousand_executions(
    database_url: str, redis_url: str, scheduler: Scheduler
) -> None:
    _burst_across_a_kill(database_url, redis_url, scheduler, 1000)
