"""The sweeper's due queries and flow admission read partial indexes of live rows; execution touches are HOT.

The data is `loadtests.sweeper`'s: a fixed live set under an ended history. Plans are the generic ones
PostgreSQL settles on for a prepared statement (psycopg prepares on the fifth call): they know no parameter
value, so only a query whose own text implies an index's predicate can use that index.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from loadtests.sweeper import downgrade_to_main, due_queries, grow_history, plan_of, scans, seed_live
from orchestrator import store
from orchestrator.store.database import make_engine, make_sessionmaker, transaction
from orchestrator.store.tables import ExecutionRow

#: The index each query must read (the stale checks also read task runs by execution, `ix_task_runs_execution`).
EXPECTED = {
    "due retries and loops": "ix_task_runs_retry_due",
    "due pauses": "ix_task_runs_paused_due",
    "stale executions": "ix_executions_live",
    "due scheduled executions": "ix_executions_scheduled",
    "past SLA": "ix_executions_sla_due",
    "admission count (flow-0)": "ix_executions_flow_live",
    "gauge: stuck executions": "ix_executions_live",
    "gauge: live states": "ix_executions_live",
}


@pytest.fixture
def db(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url, pool_size=2)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(db: Engine) -> sessionmaker[Session]:
    return make_sessionmaker(db)


def test_each_due_query_reads_its_partial_index_and_never_scans_a_table(
    db: Engine, sessions: sessionmaker[Session]
) -> None:
    seed_live(sessions)
    grow_history(sessions, 0, 100_000)  # enough history that a sequential scan would cost what it does in production
    queries = due_queries()
    assert {q.name for q in queries} == set(EXPECTED)

    reads = {q.name: [scan for plan in plan_of(db, q.run, generic=True) for scan in scans(plan)] for q in queries}

    assert {name: read for name, read in reads.items() if EXPECTED[name] not in {index for *_, index in read}} == {}
    assert {name: read for name, read in reads.items() if any(node == "Seq Scan" for node, *_ in read)} == {}


def test_the_due_queries_find_the_due_rows_and_only_those(sessions: sessionmaker[Session]) -> None:
    seed_live(sessions)
    grow_history(sessions, 0, 10_000)  # ended rows keep old retry times and SLA deadlines: none of them is due
    now = store.utcnow()
    with sessions() as session:
        retries = set(store.executions_with_due_retries(session, now, limit=1000))
        paused = store.due_paused_task_runs(session, now, limit=1000)
        scheduled = [row.id for row in store.due_scheduled_executions(session, now, limit=1000)]
        past_sla = store.executions_past_sla(session, now, limit=1000)
        stale = store.stale_running_executions(session, store.db_now(session) - timedelta(minutes=5), limit=1000)
        active = store.count_active_executions(session, "main", "bench", "flow-0")
        session.rollback()
    # The live set (loadtests/sweeper.py): task runs 300-549 retry or loop and 550-699 pause, the even ones due;
    # executions 0-199 run (the even ones stale), 200-299 are scheduled (the even ones due), 400-449 paused;
    # every 4th live execution has an SLA, every 8th a past one.
    assert retries == {f"live{i % 200}" for i in range(300, 550, 2)}
    assert sorted(run_id for _, run_id in paused) == sorted(f"livetr{i}" for i in range(550, 700, 2))
    assert set(scheduled) == {f"live{i}" for i in range(200, 300, 2)}
    assert set(past_sla) == {f"live{i}" for i in range(0, 450, 8)}
    assert set(stale) == {f"live{i}" for i in range(0, 200, 2)}
    assert active == len([i for i in (*range(200), *range(400, 450)) if i % 3 == 0])


# ---- HOT touches ----------------------------------------------------------------------------------------------


def _execution(execution_id: str) -> ExecutionRow:
    now = datetime.now(UTC)
    return ExecutionRow(
        id=execution_id,
        tenant="main",
        namespace="ns",
        flow_id="f",
        flow_revision=1,
        state="RUNNING",
        state_history=[{"state": "RUNNING", "date": store.iso(now)}],
        inputs={"n": 1},
        outputs=None,
        labels=[{"key": "team", "value": "a"}],
        trigger=None,
        parent_execution_id=None,
        parent_task_run_id=None,
        original_id=None,
        restarts=0,
        created_at=now,
        updated_at=now,
        ended_at=None,
    )


def _updates(db: Engine) -> tuple[int, int]:
    """(updates, HOT updates) of `executions`, as the statistics hold them once every backend flushed."""
    with db.connect() as conn:
        row = conn.execute(
            text("SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'executions'")
        ).one()
        conn.rollback()
    return int(row[0]), int(row[1])


def _touch_rounds(db: Engine, ids: list[str], rounds: int) -> tuple[int, int]:
    """Touch every execution `rounds` times, one transaction per touch as claims do; the counters' increase.

    Each touch gets a new connection: a pooled backend only refreshes its view of which old row versions are
    dead when its snapshot's xmin moves, and on this shared server another database's long transaction can
    pin that xmin for minutes, so dead touches would look alive and pages would fill up unpruned.
    """
    fresh = create_engine(db.url, poolclass=NullPool)
    before = _updates(db)
    try:
        for _ in range(rounds):
            for execution_id in ids:
                with transaction(make_sessionmaker(fresh)) as session:
                    store.touch_execution(session, execution_id, store.utcnow())
    finally:
        fresh.dispose()
    with db.connect() as conn:
        conn.execute(text("SELECT pg_stat_force_next_flush()"))  # a backend's statistics leave when it goes idle
        conn.rollback()
    deadline = time.monotonic() + 10
    while True:
        after = _updates(db)
        updates = after[0] - before[0]
        if updates >= len(ids) * rounds or time.monotonic() > deadline:
            return updates, after[1] - before[1]
        time.sleep(0.2)


def _executions(sessions: sessionmaker[Session], count: int) -> list[str]:
    ids = [f"hot{i}" for i in range(count)]
    with transaction(sessions) as session:
        session.add_all(_execution(i) for i in ids)
    return ids


def test_touches_are_hot_updates(db: Engine, sessions: sessionmaker[Session]) -> None:
    ids = _executions(sessions, 100)

    updates, hot = _touch_rounds(db, ids, rounds=3)

    # Not all: a page's free space (fillfactor 85) holds a few new versions until the next access prunes it.
    assert updates == 300
    assert hot >= 0.5 * updates, f"only {hot} of {updates} touches were HOT"


def test_on_mains_schema_no_touch_was_hot(db: Engine, sessions: sessionmaker[Session]) -> None:
    """What migration 0012 changed: with `updated_at` in an index, every touch rewrote every index."""
    downgrade_to_main(db)
    ids = _executions(sessions, 50)

    updates, hot = _touch_rounds(db, ids, rounds=1)

    assert (updates, hot) == (50, 0)


def test_no_executions_index_holds_updated_at(db: Engine) -> None:
    with db.connect() as conn:
        definitions = conn.execute(
            text("SELECT indexname, indexdef FROM pg_indexes WHERE tablename IN ('executions', 'task_runs')")
        ).all()
        options = conn.execute(
            text("SELECT relname, reloptions FROM pg_class WHERE relname IN ('executions', 'task_runs')")
        ).all()
    assert [name for name, definition in definitions if "updated_at" in definition] == []
    assert dict(options) == {"executions": ["fillfactor=85"], "task_runs": ["fillfactor=90"]}
