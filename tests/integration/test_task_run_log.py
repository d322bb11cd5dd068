"""The engine's claims, ends, retries and take-overs each log one line with the run's ids, attempt and duration."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import update

from orchestrator import store
from orchestrator.celery_app import create_celery_app
from orchestrator.core.states import State
from orchestrator.engine import Engine, TaskOutcome, TaskRunCoordinates
from orchestrator.observability.task_run_log import CLAIMED, ENDED, RECOVERED, RETRIED, TaskRunLog
from orchestrator.settings import load_settings
from orchestrator.store.database import make_engine, make_sessionmaker, transaction
from orchestrator.store.tables import TaskRunRow

FLOW = """
id: logged
namespace: tests.task_run_log
tasks:
  - id: work
    type: io.kestra.plugin.core.log.Log
    message: working
    retry:
      type: constant
      interval: PT1S
      maxAttempt: 2
"""
LOGGER = "orchestrator.observability.task_run_log"


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    settings = load_settings(database_url=database_url, stale_after_s=3)
    db = make_engine(database_url, pool_size=2)
    app = create_celery_app(settings)
    try:
        yield Engine(settings, make_sessionmaker(db), app, hooks=[TaskRunLog()])
    finally:
        app.close()
        db.dispose()


@pytest.fixture
def log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.INFO, logger=LOGGER):
        yield caplog


def _lines(log: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in log.records if r.name == LOGGER]


def _execution(engine: Engine) -> TaskRunCoordinates:
    row = engine.deploy_flow(FLOW, actor="test")
    with transaction(engine.sessions) as session:
        execution = engine.create_execution(session, row, engine.flow_of(row), {}, [], actor="test")
    return TaskRunCoordinates(execution.id, "work", None, None, 1)


def _events(lines: list[logging.LogRecord]) -> list[tuple[str, int, str]]:
    return [(vars(r)["action"], vars(r)["attempt"], vars(r)["state"]) for r in lines]


def _assert_ids(record: logging.LogRecord, at: TaskRunCoordinates) -> None:
    assert (vars(record)["execution_id"], vars(record)["task_run_id"], vars(record)["task_id"]) == (
        at.execution_id,
        at.task_run_id,
        "work",
    )
    assert (vars(record)["flow"], vars(record)["namespace"]) == ("logged", "tests.task_run_log")
    assert vars(record)["duration_s"] >= 0


def test_a_successful_task_run_logs_its_claim_and_its_end(engine: Engine, log: pytest.LogCaptureFixture) -> None:
    at = _execution(engine)
    claimed = engine.claim(at, owner="w1", celery_task_id="c1")
    assert claimed is not None
    engine.finish(claimed, TaskOutcome(State.SUCCESS))

    lines = _lines(log)
    assert _events(lines) == [(CLAIMED, 1, "RUNNING"), (ENDED, 1, "SUCCESS")]
    for record in lines:
        _assert_ids(record, at)
    assert vars(lines[0])["actor"] == "worker:w1"
    assert lines[1].getMessage().endswith("← work attempt 1 ● SUCCESS")


def test_a_failed_attempt_logs_its_retry_with_the_next_attempt_time_then_the_final_failure(
    engine: Engine, log: pytest.LogCaptureFixture
) -> None:
    at = _execution(engine)
    first = engine.claim(at, owner="w1", celery_task_id="c1")
    assert first is not None
    engine.finish(first, TaskOutcome(State.FAILED, error="boom"))
    with transaction(engine.sessions) as session:  # the retry is due now, not in a second
        session.execute(
            update(TaskRunRow).where(TaskRunRow.id == at.task_run_id).values(retry_at=store.db_now(session))
        )
    second_at = TaskRunCoordinates(at.execution_id, "work", None, None, 2)
    second = engine.claim(second_at, owner="w2", celery_task_id="c2")
    assert second is not None
    engine.finish(second, TaskOutcome(State.FAILED, error="boom again"))

    lines = _lines(log)
    assert _events(lines) == [
        (CLAIMED, 1, "RUNNING"),
        (RETRIED, 1, "RETRYING"),
        (CLAIMED, 2, "RUNNING"),
        (ENDED, 2, "FAILED"),
    ]
    for record in lines:
        _assert_ids(record, at)
    retried = lines[1]
    retry_at = vars(retried)["retry_at"]
    assert retry_at is not None and f"next attempt at {retry_at}" in retried.getMessage()
    assert (lines[3].levelno, lines[3].getMessage().split("s ", 1)[1]) == (logging.WARNING, "← work attempt 2 ● FAILED")


def test_a_stalled_claim_taken_over_logs_a_recovered_line(engine: Engine, log: pytest.LogCaptureFixture) -> None:
    at = _execution(engine)
    assert engine.claim(at, owner="dead", celery_task_id="c1") is not None
    with transaction(engine.sessions) as session:  # its last heartbeat was long ago
        session.execute(
            update(TaskRunRow)
            .where(TaskRunRow.id == at.task_run_id)
            .values(heartbeat_at=store.db_now(session) - timedelta(seconds=60))
        )

    assert engine.claim(at, owner="alive", celery_task_id="c2") is not None

    lines = _lines(log)
    assert _events(lines) == [(CLAIMED, 1, "RUNNING"), (RECOVERED, 1, "RUNNING")]
    recovered = lines[1]
    _assert_ids(recovered, at)
    assert (recovered.levelno, vars(recovered)["actor"]) == (logging.WARNING, "worker:alive")
    assert "work attempt 1 taken over by worker:alive" in recovered.getMessage()
