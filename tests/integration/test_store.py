"""The store against a real PostgreSQL: audited transitions, compare-and-set, an append-only audit table."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from orchestrator import store
from orchestrator.core.audit import verify_chain
from orchestrator.core.errors import Conflict, IllegalTransition
from orchestrator.core.states import State
from orchestrator.store.database import make_engine, make_sessionmaker, migrate, transaction
from orchestrator.store.tables import ExecutionRow

MIGRATIONS = Path(__file__).parents[2] / "orchestrator" / "store" / "migrations"


@pytest.fixture
def db(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url, pool_size=2)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(db: Engine) -> sessionmaker[Session]:
    return make_sessionmaker(db)


def _execution(execution_id: str = "e1") -> ExecutionRow:
    now = datetime.now(UTC)
    return ExecutionRow(
        id=execution_id,
        tenant="main",
        namespace="ns",
        flow_id="f",
        flow_revision=1,
        state="CREATED",
        state_history=[{"state": "CREATED", "date": store.iso(now)}],
        inputs={},
        outputs=None,
        labels=[],
        trigger=None,
        parent_execution_id=None,
        parent_task_run_id=None,
        original_id=None,
        restarts=0,
        created_at=now,
        updated_at=now,
        ended_at=None,
    )


def _verify(session: Session, chain_key: str) -> object:
    events = store.audit_events(session, chain_key)
    return verify_chain(
        (
            e.seq,
            e.prev_hash,
            e.hash,
            store.hashed_event(e.chain_key, e.seq, e.at, e.actor, e.action, e.subject, e.payload),
        )
        for e in events
    )


def test_a_transition_updates_the_row_and_appends_one_chained_audit_event(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as session:
        row = _execution()
        store.create_execution(session, row, actor="user:ada", payload={})
        store.record_transition(session, row, State.RUNNING, actor="user:ada")
    with sessions() as session:
        saved = store.get_execution(session, "e1")
        events = store.audit_events(session, "e1")
        assert saved is not None and saved.state == "RUNNING"
        assert [h["state"] for h in saved.state_history] == ["CREATED", "RUNNING"]
        assert [(e.seq, e.action, e.actor) for e in events] == [
            (1, "execution.created", "user:ada"),
            (2, "execution.running", "user:ada"),
        ]
        assert events[1].prev_hash == events[0].hash
        assert _verify(session, "e1") is None


def test_an_illegal_transition_is_refused_and_leaves_no_trace(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as session:
        store.create_execution(session, _execution(), actor="user:ada", payload={})
    with pytest.raises(IllegalTransition) as raised, transaction(sessions) as session:
        row = store.lock_execution(session, "e1")
        assert row is not None
        store.record_transition(session, row, State.SUCCESS, actor="user:ada")
    assert (raised.value.current, raised.value.requested) == (State.CREATED, State.SUCCESS)
    with sessions() as session:
        assert len(store.audit_events(session, "e1")) == 1


def test_a_transition_from_a_stale_state_loses_the_compare_and_set(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as session:
        store.create_execution(session, _execution(), actor="user:ada", payload={})
    with sessions() as session:
        stale = store.get_execution(session, "e1")
    with transaction(sessions) as session:
        fresh = store.lock_execution(session, "e1")
        assert fresh is not None
        store.record_transition(session, fresh, State.RUNNING, actor="system")
    assert stale is not None
    with pytest.raises(Conflict), transaction(sessions) as session:
        store.record_transition(session, stale, State.RUNNING, actor="system")


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_events SET actor = 'mallory'",
        "DELETE FROM audit_events",
        "TRUNCATE audit_events",
    ],
)
def test_the_database_refuses_to_rewrite_audit_history(sessions: sessionmaker[Session], statement: str) -> None:
    with transaction(sessions) as session:
        store.create_execution(session, _execution(), actor="user:ada", payload={})
    with pytest.raises(DBAPIError, match="append-only"), sessions() as session, session.begin():
        session.execute(text(statement))
    with sessions() as session:
        assert len(store.audit_events(session, "e1")) == 1


def test_a_tampered_event_fails_verification(sessions: sessionmaker[Session], db: Engine) -> None:
    with transaction(sessions) as session:
        row = _execution()
        store.create_execution(session, row, actor="user:ada", payload={})
        store.record_transition(session, row, State.RUNNING, actor="user:ada")
    # A superuser can disable the trigger; the hash chain still exposes the edit.
    with db.begin() as conn:
        conn.execute(text("ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update"))
        conn.execute(text("UPDATE audit_events SET actor = 'mallory' WHERE seq = 1"))
        conn.execute(text("ALTER TABLE audit_events ENABLE TRIGGER audit_events_no_update"))
    with sessions() as session:
        broken = _verify(session, "e1")
    assert broken is not None and broken.seq == 1  # type: ignore[attr-defined]


def test_migrating_an_up_to_date_database_changes_nothing(db: Engine) -> None:
    with db.connect() as conn:
        before = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
    migrate(db)
    with db.connect() as conn:
        after = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
    newest = max(p.name.split("_")[0] for p in (MIGRATIONS / "versions").glob("[0-9]*.py"))
    assert before == after == newest


def test_deploying_the_same_source_twice_keeps_one_revision(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as session:
        first = store.save_flow_revision(session, "main", "ns", "f", "id: f", {"id": "f"})
        same = store.save_flow_revision(session, "main", "ns", "f", "id: f", {"id": "f"})
        changed = store.save_flow_revision(session, "main", "ns", "f", "id: f\n", {"id": "f"})
    assert (first.revision, same.revision, changed.revision) == (1, 1, 2)
