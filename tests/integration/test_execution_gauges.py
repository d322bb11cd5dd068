"""Operator gauges against a real PostgreSQL: executions per live state, stuck ones, a short cache, /metrics."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from orchestrator import store
from orchestrator.observability.execution_gauges import ExecutionGaugesCollector
from orchestrator.store.database import make_engine, make_sessionmaker, transaction
from orchestrator.store.tables import ExecutionRow, TaskRunRow

STALE_AFTER_S = 60.0


@pytest.fixture
def db(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url, pool_size=2)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(db: Engine) -> sessionmaker[Session]:
    return make_sessionmaker(db)


def _execution(execution_id: str, state: str, *, idle_s: float = 0, namespace: str = "ns") -> ExecutionRow:
    updated = datetime.now(UTC) - timedelta(seconds=idle_s)
    return ExecutionRow(
        id=execution_id, tenant="main", namespace=namespace, flow_id="f", flow_revision=1, state=state,
        state_history=[{"state": state, "date": store.iso(updated)}], inputs={}, outputs=None, labels=[],
        trigger=None, parent_execution_id=None, parent_task_run_id=None, original_id=None, restarts=0,
        created_at=updated, updated_at=updated, ended_at=None,
    )  # fmt: skip


def _running_task_run(execution_id: str, heartbeat_s_ago: float) -> TaskRunRow:
    now = datetime.now(UTC)
    return TaskRunRow(
        id=f"t-{execution_id}", execution_id=execution_id, task_id="slow", parent_id=None, iteration=None,
        value=None, state="RUNNING", state_history=[], attempt=1, attempts=[], outputs=None, decision=None,
        retry_at=None, claim_owner="w1", heartbeat_at=now - timedelta(seconds=heartbeat_s_ago),
        created_at=now - timedelta(seconds=3600), updated_at=now - timedelta(seconds=3600),
    )  # fmt: skip


def _samples(collector: ExecutionGaugesCollector) -> dict[tuple[str, str], float]:
    return {(s.name, s.labels.get("state", "")): s.value for f in collector.collect() for s in f.samples}


def test_live_executions_are_counted_per_state_with_every_live_state_present(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as session:
        session.add_all(
            [_execution("r1", "RUNNING"), _execution("r2", "RUNNING", namespace="other"),
             _execution("p1", "PAUSED"), _execution("q1", "QUEUED"), _execution("s1", "SUCCESS")]
        )  # fmt: skip
    collector = ExecutionGaugesCollector(STALE_AFTER_S)
    collector.attach(sessions)

    samples = _samples(collector)

    by_state = {state: v for (name, state), v in samples.items() if name == "chorus_executions"}
    assert by_state == {"CREATED": 0, "QUEUED": 1, "RUNNING": 2, "PAUSED": 1, "RETRYING": 0, "KILLING": 0}
    assert samples[("chorus_executions_stuck", "")] == 0


def test_a_running_execution_without_progress_or_heartbeat_past_the_stale_window_is_stuck(
    sessions: sessionmaker[Session],
) -> None:
    with transaction(sessions) as session:
        session.add_all(
            [
                _execution("stuck", "RUNNING", idle_s=STALE_AFTER_S * 3),
                _execution("busy", "RUNNING", idle_s=STALE_AFTER_S * 3),  # its task run still heartbeats
                _execution("fresh", "RUNNING", idle_s=1),
                _execution("paused", "PAUSED", idle_s=STALE_AFTER_S * 3),  # waiting is not being stuck
            ]
        )
        session.flush()
        session.add(_running_task_run("busy", heartbeat_s_ago=2))
    collector = ExecutionGaugesCollector(STALE_AFTER_S)
    collector.attach(sessions)

    assert _samples(collector)[("chorus_executions_stuck", "")] == 1


def test_scrapes_within_the_cache_window_reuse_one_reading(sessions: sessionmaker[Session]) -> None:
    collector = ExecutionGaugesCollector(STALE_AFTER_S, cache_s=300)
    collector.attach(sessions)
    assert _samples(collector)[("chorus_executions", "RUNNING")] == 0

    with transaction(sessions) as session:
        session.add(_execution("late", "RUNNING"))

    assert _samples(collector)[("chorus_executions", "RUNNING")] == 0
    assert _samples(_fresh(sessions))[("chorus_executions", "RUNNING")] == 1


def _fresh(sessions: sessionmaker[Session]) -> ExecutionGaugesCollector:
    collector = ExecutionGaugesCollector(STALE_AFTER_S, cache_s=0)
    collector.attach(sessions)
    return collector


def test_before_the_lifespan_attaches_a_database_and_when_it_fails_no_series_are_exported(
    database_url: str,
) -> None:
    unattached = ExecutionGaugesCollector(STALE_AFTER_S)
    gone = make_engine(database_url.rsplit("/", 1)[0] + "/no_such_database_here", pool_size=1)
    broken = ExecutionGaugesCollector(STALE_AFTER_S)
    broken.attach(make_sessionmaker(gone))
    try:
        assert list(unattached.collect()) == []
        assert list(broken.collect()) == []
    finally:
        gone.dispose()


def test_the_exposition_carries_the_gauges_under_their_names(sessions: sessionmaker[Session]) -> None:
    registry = CollectorRegistry()
    registry.register(_fresh(sessions))

    text = generate_latest(registry).decode()

    assert 'chorus_executions{state="RUNNING"} 0.0' in text
    assert "chorus_executions_stuck 0.0" in text
