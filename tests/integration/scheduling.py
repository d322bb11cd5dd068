"""Shared pieces of the trigger tests: a fake clock, an hourly flow, and an engine over the test database."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from orchestrator.celery_app import create_celery_app
from orchestrator.engine import Engine
from orchestrator.settings import load_settings
from orchestrator.store.database import make_engine, make_sessionmaker
from orchestrator.store.tables import ExecutionRow
from orchestrator.triggers.wiring import build_engine

START = datetime(2025, 12, 31, 23, 59, 59, tzinfo=UTC)

HOURLY = """
id: hourly
namespace: tests.triggers
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: "{{ trigger.date }}"
triggers:
  - id: every-hour
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "@hourly"
"""


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self.now

    def advance(self, delta: timedelta) -> None:
        with self._lock:
            self.now += delta


@pytest.fixture
def engine(database_url: str, redis_url: str, tmp_path: Path) -> Iterator[Engine]:
    settings = load_settings(database_url=database_url, broker_url=redis_url, data_dir=tmp_path)
    db = make_engine(database_url, pool_size=4)
    try:
        yield build_engine(settings, make_sessionmaker(db), create_celery_app(settings))
    finally:
        db.dispose()


def executions_of(engine: Engine, flow_id: str) -> list[ExecutionRow]:
    with engine.sessions() as session:
        query = select(ExecutionRow).where(ExecutionRow.flow_id == flow_id).order_by(ExecutionRow.created_at)
        return list(session.scalars(query).all())
