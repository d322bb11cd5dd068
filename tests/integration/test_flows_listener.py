"""The flows listener (orchestrator.triggers.flows_listener): Flow-trigger candidates made stale by a NOTIFY.

An execution end reads no flows version while the listener hears `chorus_flows`; a deploy by another
process reaches this one's next end through PostgreSQL; a lost LISTEN connection makes ends read the
version again until the listener is back (and has read the version after its new LISTEN).
"""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import text

from orchestrator import store
from orchestrator.core.states import State
from orchestrator.engine import Engine
from orchestrator.store.database import transaction
from orchestrator.triggers.flows_listener import FlowsListener
from orchestrator.triggers.wiring import flows_listener_of
from tests.harness.engines import EngineFactory
from tests.harness.round_trips import RoundTrips, count_round_trips, sql_engine_of
from tests.harness.waiting import wait_until
from tests.integration.scheduling import engine, executions_of
from tests.integration.test_flow_triggers import DOWNSTREAM, UPSTREAM

__all__ = ["engine"]

#: The flows version's aggregate (store.triggers.flows_version), as the statement counter sees it.
VERSION_QUERY = "max(flow_revisions.created_at)"


def _listener(engine: Engine) -> FlowsListener:
    listener = flows_listener_of(engine)
    assert listener is not None
    return listener


def _slow_to_reconnect(engine: Engine) -> FlowsListener:
    """A listener that waits 3 s before it reconnects (the wiring's retries in 0.1 s): time to see it down."""
    listener = FlowsListener(engine.settings.database_url, engine.settings.tenant, backoff_s=3.0)
    engine.flows_version = listener.version
    engine.on_close(listener.close)
    assert listener.wait_healthy(timeout_s=10)
    return listener


def _end_upstream(engine: Engine) -> tuple[str, RoundTrips]:
    """Submit the upstream flow and fail its execution; the statements of that end and of its reaction."""
    execution_id = engine.submit("tests.flowtriggers", "upstream", inputs={}, actor="t").id
    with count_round_trips(sql_engine_of(engine)) as count, engine.transaction() as session:
        execution = store.lock_execution(session, execution_id)
        assert execution is not None
        store.record_transition(session, execution, State.FAILED, actor="test")
    return execution_id, count


def _version_reads(count: RoundTrips) -> int:
    return len([s for s in count.statements if VERSION_QUERY in s])


def _started_by(engine: Engine, upstream_id: str) -> list[str]:
    return [
        e.id
        for e in executions_of(engine, "downstream")
        if e.trigger is not None and e.trigger["variables"]["executionId"] == upstream_id
    ]


def _terminate(engine: Engine, backend_pid: int) -> None:
    with transaction(engine.sessions) as session:
        assert session.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend_pid}).scalar()


def test_an_end_reads_no_flows_version_while_the_listener_is_healthy(engine: Engine) -> None:
    engine.deploy_flow(UPSTREAM, actor="t")
    assert _listener(engine).wait_healthy(timeout_s=10)
    _end_upstream(engine)  # the candidates (none) cached for the listener's token

    ends = [_end_upstream(engine)[1] for _ in range(3)]

    assert [_version_reads(count) for count in ends] == [0, 0, 0]
    assert [count.commits for count in ends] == [1, 1, 1]  # and no transaction for the Flow triggers


def test_a_flow_trigger_deployed_by_another_engine_is_heard_and_seen_at_the_next_end(
    engine: Engine, engine_factory: EngineFactory, database_url: str, redis_url: str
) -> None:
    engine.deploy_flow(UPSTREAM, actor="t")
    listener = _listener(engine)
    assert listener.wait_healthy(timeout_s=10)
    _end_upstream(engine)  # this engine now knows of no Flow trigger (cached)
    before = listener.token()
    other = engine_factory(database_url, broker_url=redis_url)  # another process's engine

    other.deploy_flow(DOWNSTREAM, actor="t")
    wait_until(lambda: listener.token() != before, timeout_s=5, message="the deploy's NOTIFY heard")
    upstream_id, count = _end_upstream(engine)

    assert _version_reads(count) == 0
    assert len(_started_by(engine, upstream_id)) == 1


def test_a_flow_deleted_by_another_engine_is_heard_and_no_longer_started(
    engine: Engine, engine_factory: EngineFactory, database_url: str, redis_url: str
) -> None:
    engine.deploy_flow(UPSTREAM, actor="t")
    engine.deploy_flow(DOWNSTREAM, actor="t")
    listener = _listener(engine)
    assert listener.wait_healthy(timeout_s=10)
    started_id, _ = _end_upstream(engine)
    assert len(_started_by(engine, started_id)) == 1  # the Flow trigger cached as a candidate
    before = listener.token()

    engine_factory(database_url, broker_url=redis_url).delete_flow("tests.flowtriggers", "downstream", actor="t")
    wait_until(lambda: listener.token() != before, timeout_s=5, message="the delete's NOTIFY heard")
    upstream_id, count = _end_upstream(engine)

    assert _version_reads(count) == 0
    assert _started_by(engine, upstream_id) == []


def test_a_rolled_back_flow_change_notifies_nobody(engine: Engine) -> None:
    listener = _listener(engine)
    assert listener.wait_healthy(timeout_s=10)
    token = listener.token()
    assert token is not None
    heard = token[-1]

    with pytest.raises(RuntimeError), transaction(engine.sessions) as session:
        store.save_flow_revision(session, engine.settings.tenant, "tests.flowtriggers", "never", "id: never", {})
        raise RuntimeError("rolled back")
    engine.deploy_flow(UPSTREAM, actor="t")  # notified after the rolled-back one would have been

    wait_until(lambda: (t := listener.token()) is not None and t[-1] > heard, timeout_s=5, message="deploy heard")
    token = listener.token()
    assert token is not None and token[-1] == heard + 1


def test_ends_read_the_flows_version_while_the_listener_is_down_and_stop_once_it_is_back(
    engine: Engine, engine_factory: EngineFactory, database_url: str, redis_url: str
) -> None:
    engine.deploy_flow(UPSTREAM, actor="t")
    listener = _slow_to_reconnect(engine)
    _end_upstream(engine)
    first_pid = listener.backend_pid
    assert first_pid is not None

    _terminate(engine, first_pid)
    wait_until(lambda: not listener.healthy, timeout_s=5, message="the lost connection noticed")
    engine_factory(database_url, broker_url=redis_url).deploy_flow(DOWNSTREAM, actor="t")  # heard by nobody
    down_id, down = _end_upstream(engine)

    assert _version_reads(down) >= 1  # fell back: the version read in the ending transaction
    assert len(_started_by(engine, down_id)) == 1  # and the new flow seen through it

    assert listener.wait_healthy(timeout_s=15)  # reconnected after its backoff
    assert listener.backend_pid not in (None, first_pid)
    _end_upstream(engine)  # candidates cached for the new token
    back_id, back = _end_upstream(engine)
    assert _version_reads(back) == 0
    assert len(_started_by(engine, back_id)) == 1


def test_a_flow_deployed_while_the_listener_was_down_is_seen_once_it_is_back(
    engine: Engine, engine_factory: EngineFactory, database_url: str, redis_url: str
) -> None:
    engine.deploy_flow(UPSTREAM, actor="t")
    listener = _slow_to_reconnect(engine)
    _end_upstream(engine)  # no candidates, cached for the listener's token
    first_pid = listener.backend_pid
    assert first_pid is not None

    _terminate(engine, first_pid)
    wait_until(lambda: not listener.healthy, timeout_s=5, message="the lost connection noticed")
    engine_factory(database_url, broker_url=redis_url).deploy_flow(DOWNSTREAM, actor="t")  # its NOTIFY is lost
    assert listener.wait_healthy(timeout_s=15)
    upstream_id, count = _end_upstream(engine)

    # The version read after the new LISTEN differs from the one before: the cache is stale, no end reads it.
    assert _version_reads(count) == 0
    assert len(_started_by(engine, upstream_id)) == 1


def test_an_unreachable_database_leaves_the_listener_down_and_ends_reading_the_version(engine: Engine) -> None:
    engine.deploy_flow(UPSTREAM, actor="t")
    listener = FlowsListener("postgresql+psycopg://chorus@127.0.0.1:1/nowhere", engine.settings.tenant)
    engine.flows_version = listener.version
    engine.on_close(listener.close)

    assert not listener.wait_healthy(timeout_s=0.5)
    _, count = _end_upstream(engine)
    assert _version_reads(count) >= 1
    assert listener.token() is None and listener.backend_pid is None


def test_closing_the_engine_stops_its_listener_thread_and_connection(
    engine_factory: EngineFactory, database_url: str, redis_url: str
) -> None:
    others = {t for t in threading.enumerate() if t.name == "chorus-flows-listener"}  # other tests' engines
    engine = engine_factory(database_url, broker_url=redis_url)
    listener = _listener(engine)
    assert listener.wait_healthy(timeout_s=10)
    backend_pid = listener.backend_pid
    threads = [t for t in threading.enumerate() if t.name == "chorus-flows-listener" and t not in others]
    assert len(threads) == 1

    engine.close()

    assert [t for t in threads if t.is_alive()] == []
    assert listener.token() is None  # closed: never trusted again, never restarted

    def backend_gone() -> bool:
        with transaction(engine.sessions) as session:
            query = text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid")
            return session.execute(query, {"pid": backend_pid}).scalar() == 0

    wait_until(backend_gone, timeout_s=5, message="the LISTEN connection closed")


def test_a_forked_process_does_not_trust_its_parents_listener(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    listener = _listener(engine)
    assert listener.wait_healthy(timeout_s=10)
    parents_pid, parents_stop = listener.backend_pid, listener._stop
    # As in a child after fork: another pid, and the parent's thread (stopped here by hand) not its own.
    monkeypatch.setattr("orchestrator.triggers.flows_listener.os.getpid", lambda: -1)
    try:
        assert listener.token() is None  # its health was the parent's: read the version until its own LISTEN
        assert listener.wait_healthy(timeout_s=10)
        assert listener.backend_pid not in (None, parents_pid)
    finally:
        parents_stop.set()
