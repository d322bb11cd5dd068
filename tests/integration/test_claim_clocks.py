"""Claims and heartbeats are judged by the database's clock, so workers whose clocks disagree by seconds
neither take over each other's live claims nor keep dead ones alive."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from orchestrator import store
from orchestrator.celery_app import create_celery_app
from orchestrator.engine import Engine, TaskRunCoordinates
from orchestrator.settings import load_settings
from orchestrator.store.database import make_engine, make_sessionmaker, transaction
from orchestrator.store.tables import TaskRunRow
from orchestrator.triggers.wiring import build_engine

FLOW = """
id: clocks
namespace: tests.clocks
tasks:
  - id: work
    type: io.kestra.plugin.core.log.Log
    message: working
"""


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    settings = load_settings(database_url=database_url, stale_after_s=3)
    db = make_engine(database_url, pool_size=2)
    app = create_celery_app(settings)
    try:
        yield build_engine(settings, make_sessionmaker(db), app)
    finally:
        app.close()
        db.dispose()


def _running_task_run(engine: Engine) -> TaskRunCoordinates:
    row = engine.deploy_flow(FLOW, actor="test")
    with transaction(engine.sessions) as session:
        execution = engine.create_execution(session, row, engine.flow_of(row), {}, [], actor="test")
    return TaskRunCoordinates(execution.id, "work", None, None, 1)


def _clock(monkeypatch: pytest.MonkeyPatch, skew_s: float) -> None:
    real = datetime.now
    monkeypatch.setattr(store, "utcnow", lambda: real(tz=UTC) + timedelta(seconds=skew_s))


def test_a_worker_whose_clock_is_behind_keeps_its_live_claim(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    at = _running_task_run(engine)
    _clock(monkeypatch, -10)  # the first worker's clock is 10 s behind
    assert engine.claim(at, owner="slow-clock", celery_task_id="first") is not None
    engine.heartbeat(at, "slow-clock")

    _clock(monkeypatch, 0)  # a duplicate delivery reaches a worker with a true clock
    second = engine.claim(at, owner="true-clock", celery_task_id="second")

    assert second is None
    assert engine.task_run_state(at.task_run_id) == "RUNNING"


def test_a_dead_claim_is_taken_over_even_by_a_worker_whose_clock_is_behind(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = _running_task_run(engine)
    assert engine.claim(at, owner="dead", celery_task_id="first") is not None
    with transaction(engine.sessions) as session:  # its last heartbeat was long ago (by the database's clock)
        session.execute(
            update(TaskRunRow)
            .where(TaskRunRow.id == at.task_run_id)
            .values(heartbeat_at=store.db_now(session) - timedelta(seconds=60))
        )

    _clock(monkeypatch, -120)
    taken = engine.claim(at, owner="behind", celery_task_id="second")

    assert taken is not None and taken.owner == "behind"
