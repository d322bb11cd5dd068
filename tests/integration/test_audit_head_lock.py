"""An execution's lock statement also locks and reads its audit chain's head (issue 18: the head kept where the
transaction already locks), in the order every writer takes them: the execution row, then the head; and a
transaction's events are written with their chains' heads in one statement, together or not at all.

Real PostgreSQL; a second and third connection hold and probe the locks.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import make_url, text
from sqlalchemy.exc import IntegrityError

from orchestrator import store
from orchestrator.core.audit import GENESIS_HASH
from orchestrator.engine import Engine
from orchestrator.engine.audit_trail import verify_chains
from orchestrator.store.audit_chain import seed_head
from orchestrator.store.database import transaction
from orchestrator.store.tables import ExecutionRow, table_of
from tests.harness.engines import EngineFactory
from tests.harness.round_trips import count_round_trips, sql_engine_of

FLOW = """
id: head_lock
namespace: tests.head_lock
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: hello
"""

LOCKS: dict[str, Callable[[Any, str], object]] = {
    "lock_execution": store.lock_execution,
    "lock_touch_execution": store.lock_touch_execution,
}


@pytest.fixture
def engine(database_url: str, idle_broker_url: str, engine_factory: EngineFactory) -> Iterator[Engine]:
    engine = engine_factory(database_url, broker_url=idle_broker_url)
    engine.deploy_flow(FLOW, actor="test")
    yield engine


def _libpq(database_url: str) -> str:
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


def _submit(engine: Engine) -> str:
    return engine.submit("tests.head_lock", "head_lock", inputs={}, actor="test").id


def _head_reads(statements: list[str]) -> list[str]:
    return [s for s in statements if s.lstrip().startswith("SELECT audit_heads.seq")]


def _chain_holds(engine: Engine, execution_id: str) -> int:
    with transaction(engine.sessions) as session:
        [report] = verify_chains(session, [execution_id])
    assert report.broken is None, report
    return report.events


@pytest.mark.parametrize("lock", sorted(LOCKS))
def test_the_lock_statement_reads_the_head_so_an_append_reads_nothing_more(engine: Engine, lock: str) -> None:
    execution_id = _submit(engine)
    before = _chain_holds(engine, execution_id)
    with count_round_trips(sql_engine_of(engine)) as counted, transaction(engine.sessions) as session:
        assert LOCKS[lock](session, execution_id) is not None
        for i in range(3):
            store.append_audit(session, execution_id, actor="test", action="test.event", subject=None, payload={"i": i})
    assert len(counted.statements) == 1 + 1, counted.describe()  # the lock; the events with their head at commit
    assert _head_reads(counted.statements) == [], counted.describe()
    assert _chain_holds(engine, execution_id) == before + 3


def test_without_a_head_row_the_first_append_reads_and_locks_it_as_before(engine: Engine) -> None:
    copied = _submit(engine)
    execution_id = "nochain" + copied[7:]
    columns = ", ".join(c.name for c in table_of(ExecutionRow).columns if c.name != "id")
    with transaction(engine.sessions) as session:
        # An execution whose chain was never written (a row copied without its events; the log is append-only).
        session.execute(
            text(f"INSERT INTO executions (id, {columns}) SELECT :new, {columns} FROM executions WHERE id = :old"),
            {"new": execution_id, "old": copied},
        )
    with count_round_trips(sql_engine_of(engine)) as counted, transaction(engine.sessions) as session:
        assert store.lock_execution(session, execution_id) is not None
        event = store.append_audit(session, execution_id, actor="test", action="test.event", subject=None, payload={})
    assert (event.seq, event.prev_hash) == (1, GENESIS_HASH)
    assert len(_head_reads(counted.statements)) == 1, counted.describe()
    assert _chain_holds(engine, execution_id) == 1


def test_what_the_transaction_appended_wins_over_the_head_a_second_lock_reads(engine: Engine) -> None:
    execution_id = _submit(engine)
    before = _chain_holds(engine, execution_id)
    with transaction(engine.sessions) as session:
        store.lock_execution(session, execution_id)
        store.append_audit(session, execution_id, actor="test", action="test.one", subject=None, payload={})
        # Not written yet (events go at commit): the database's head is one behind what this transaction decided.
        store.lock_touch_execution(session, execution_id)
        store.lock_execution(session, execution_id)
        event = store.append_audit(session, execution_id, actor="test", action="test.two", subject=None, payload={})
    assert event.seq == before + 2
    assert _chain_holds(engine, execution_id) == before + 2


def test_a_head_read_inside_a_savepoint_is_not_remembered_past_its_rollback(engine: Engine) -> None:
    execution_id = _submit(engine)
    before = _chain_holds(engine, execution_id)
    with transaction(engine.sessions) as session:
        savepoint = session.begin_nested()
        store.lock_execution(session, execution_id)
        store.append_audit(session, execution_id, actor="test", action="test.undone", subject=None, payload={})
        store.lock_execution(session, execution_id)  # reads the head with the savepoint's event in it
        savepoint.rollback()
        event = store.append_audit(session, execution_id, actor="test", action="test.kept", subject=None, payload={})
    assert event.seq == before + 1
    assert _chain_holds(engine, execution_id) == before + 1


@pytest.mark.parametrize("lock", sorted(LOCKS))
def test_the_execution_row_is_locked_before_the_head_is_waited_for(
    engine: Engine, database_url: str, lock: str
) -> None:
    """A writer holding only the head (an LLM ledger's record) makes the lock statement wait with the execution
    row already locked: the order every other path takes (row, then head), so no cycle with them. Once the
    head's holder commits, the statement reads the head it wrote (READ COMMITTED re-reads a locked row)."""
    execution_id = _submit(engine)
    with psycopg.connect(_libpq(database_url)) as holder, psycopg.connect(_libpq(database_url)) as probe:
        holder.execute("SELECT seq FROM audit_heads WHERE chain_key = %s FOR UPDATE", (execution_id,))
        seen: dict[str, Any] = {}

        def lock_and_append() -> None:
            with transaction(engine.sessions) as session:
                LOCKS[lock](session, execution_id)
                seen["event"] = store.append_audit(
                    session, execution_id, actor="test", action="test.after", subject=None, payload={}
                )

        waiter = threading.Thread(target=lock_and_append)
        waiter.start()
        deadline = time.monotonic() + 10
        row_locked = False
        while time.monotonic() < deadline and not row_locked:
            time.sleep(0.1)
            try:
                probe.execute("SELECT id FROM executions WHERE id = %s FOR UPDATE NOWAIT", (execution_id,))
                probe.rollback()
            except psycopg.errors.LockNotAvailable:
                probe.rollback()
                row_locked = True
        assert row_locked, "the lock statement did not take the execution row while waiting for the head"
        assert waiter.is_alive()  # still waiting for the head
        # The holder moves the head, as a ledger record's append would, and commits: the waiter chains after it.
        holder.execute("UPDATE audit_heads SET seq = seq + 1, hash = %s WHERE chain_key = %s", ("f" * 64, execution_id))
        holder.commit()
        waiter.join(timeout=10)
        assert not waiter.is_alive()
    assert seen["event"].prev_hash == "f" * 64, seen["event"]


def test_events_of_several_chains_are_written_in_append_order_with_each_chains_head(engine: Engine) -> None:
    first, second = _submit(engine), _submit(engine)
    counts = {first: _chain_holds(engine, first), second: _chain_holds(engine, second)}
    with count_round_trips(sql_engine_of(engine)) as counted, transaction(engine.sessions) as session:
        for i in range(3):
            for chain in (first, second):
                store.append_audit(session, chain, actor="test", action="test.event", subject=None, payload={"i": i})
    assert len([s for s in counted.statements if "INSERT INTO audit_events" in s]) == 1, counted.describe()
    with transaction(engine.sessions) as session:
        ours = [e for chain in (first, second) for e in store.audit_events(session, chain) if e.action == "test.event"]
        by_id = sorted(ours, key=lambda e: e.id)
        assert [(e.chain_key, e.payload["i"]) for e in by_id] == [(c, i) for i in range(3) for c in (first, second)]
        for chain in (first, second):
            head = store.audit_head(session, chain)
            assert head is not None and head.seq == counts[chain] + 3
    assert _chain_holds(engine, first) == counts[first] + 3
    assert _chain_holds(engine, second) == counts[second] + 3


def test_a_refused_event_leaves_the_head_as_it_was(engine: Engine) -> None:
    execution_id = _submit(engine)
    before = _chain_holds(engine, execution_id)
    with transaction(engine.sessions) as session:
        head = store.audit_head(session, execution_id)
        assert head is not None
        was = (head.seq, head.hash)
    with pytest.raises(IntegrityError), transaction(engine.sessions) as session:
        # A transaction that believes the chain one event shorter (a fork): its event's (chain, seq) exists.
        seed_head(session, execution_id, was[0] - 1, "0" * 64)
        store.append_audit(session, execution_id, actor="test", action="test.fork", subject=None, payload={})
    with transaction(engine.sessions) as session:
        head = store.audit_head(session, execution_id)
        assert head is not None and (head.seq, head.hash) == was
    assert _chain_holds(engine, execution_id) == before


def test_log_lines_go_with_the_events_in_one_statement_or_alone_without_them(engine: Engine) -> None:
    execution_id = _submit(engine)
    before = _chain_holds(engine, execution_id)

    def line(message: str) -> dict[str, Any]:
        return {"execution_id": execution_id, "task_run_id": None, "task_id": None, "attempt": None,
                "namespace": "tests.head_lock", "flow_id": "head_lock", "level": "INFO", "message": message,
                "at": store.utcnow()}  # fmt: skip

    with count_round_trips(sql_engine_of(engine)) as both, transaction(engine.sessions) as session:
        store.lock_execution(session, execution_id)
        store.insert_log_lines(session, [line("with 1"), line("with 2")])
        store.append_audit(session, execution_id, actor="test", action="test.event", subject=None, payload={})
    with count_round_trips(sql_engine_of(engine)) as alone, transaction(engine.sessions) as session:
        store.insert_log_lines(session, [line("alone")])
    [written] = [s for s in both.statements if "INSERT INTO log_lines" in s]
    assert "INSERT INTO audit_events" in written, both.describe()
    assert len(alone.statements) == 1 and alone.statements[0].startswith("INSERT INTO log_lines"), alone.describe()
    messages = [entry["message"] for entry in engine.fetch_logs(execution_id)]
    assert messages[-3:] == ["with 1", "with 2", "alone"]
    assert _chain_holds(engine, execution_id) == before + 1
