"""A worker fences an attempt whose claim it cannot confirm: the task body stops before another worker may take
the attempt over (the claim taken over, or heartbeats that cannot commit, as on a host cut from PostgreSQL)."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import update

from orchestrator.engine import ClaimedTaskRun, Engine, TaskRunCoordinates
from orchestrator.store.database import transaction
from orchestrator.store.tables import TaskRunRow
from tests.harness.engines import EngineFactory
from tests.harness.services import psycopg_url
from workers import drain
from workers.runtime import _Heartbeat, fence_after_s

FLOW = """
id: fenced
namespace: tests.fencing
tasks:
  - id: work
    type: io.kestra.plugin.core.log.Log
    message: working
"""
STALE_AFTER_S = 2.0
HEARTBEAT_INTERVAL_S = 0.2


@pytest.fixture
def engine(database_url: str, engine_factory: EngineFactory) -> Engine:
    return engine_factory(database_url, stale_after_s=STALE_AFTER_S, heartbeat_interval_s=HEARTBEAT_INTERVAL_S)


@pytest.fixture(autouse=True)
def armed() -> Iterator[None]:
    """This test process plays a prefork pool process: its main thread runs the body, fencing is armed."""
    previous = signal.getsignal(drain.FENCE_SIGNAL)
    drain.arm_fencing()
    try:
        yield
    finally:
        signal.signal(drain.FENCE_SIGNAL, previous)
        drain._fence_armed = False


def _claimed(engine: Engine) -> ClaimedTaskRun:
    row = engine.deploy_flow(FLOW, actor="test")
    with transaction(engine.sessions) as session:
        execution = engine.create_execution(session, row, engine.flow_of(row), {}, [], actor="test")
    claimed = engine.claim(TaskRunCoordinates(execution.id, "work", None, None, 1), owner="me", celery_task_id="m1")
    assert claimed is not None
    return claimed


def _run_body(engine: Engine, claimed: ClaimedTaskRun, body_s: float) -> float:
    """Run a body of `body_s` under the heartbeat, interruptible as run_task runs it; the seconds it ran."""
    started = time.monotonic()
    with _Heartbeat(engine, claimed), drain.interruptible():
        time.sleep(body_s)
    return time.monotonic() - started


def test_a_body_whose_claim_was_taken_over_stops_at_the_next_heartbeat(engine: Engine) -> None:
    claimed = _claimed(engine)
    with transaction(engine.sessions) as session:  # another worker took the attempt over
        session.execute(
            update(TaskRunRow).where(TaskRunRow.id == claimed.coordinates.task_run_id).values(claim_owner="b")
        )

    started = time.monotonic()
    with pytest.raises(drain.Fenced):
        _run_body(engine, claimed, body_s=10)

    assert time.monotonic() - started < 3 * HEARTBEAT_INTERVAL_S + 0.5


def test_a_body_whose_heartbeats_cannot_commit_stops_before_the_claim_goes_stale(
    engine: Engine, database_url: str
) -> None:
    claimed = _claimed(engine)
    # A lock on the row makes every heartbeat hang, as a connection to an unreachable database does.
    with psycopg.connect(psycopg_url(database_url)) as blocker:
        blocker.execute("SELECT 1 FROM task_runs WHERE id = %s FOR UPDATE", (claimed.coordinates.task_run_id,))
        started = time.monotonic()
        with pytest.raises(drain.Fenced):
            _run_body(engine, claimed, body_s=10)
        stopped_after_s = time.monotonic() - started
        blocker.rollback()

    assert fence_after_s(engine.settings) < stopped_after_s < STALE_AFTER_S


def test_a_body_whose_heartbeats_commit_runs_past_the_stale_window(engine: Engine) -> None:
    claimed = _claimed(engine)

    ran_s = _run_body(engine, claimed, body_s=2 * STALE_AFTER_S)

    assert ran_s >= 2 * STALE_AFTER_S
