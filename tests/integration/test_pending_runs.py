"""Task runs inserted once, as they end up (issue 18, item 2: "inserts with their final state where the outcome is
known"; store/pending_runs.py).

A task run created under its execution's lock by a transaction that knows all the execution's task runs is written
by that transaction's before-commit statement, with the state its transitions gave it in memory: an inline Log
costs no INSERT and no UPDATE of its own. Every other statement sees it first, a savepoint cannot take it back
unnoticed, and a duplicate id fails the whole transaction rather than being dropped.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from orchestrator import store
from orchestrator.core.states import State
from orchestrator.engine import Engine, TaskRunCoordinates, Verdict
from orchestrator.engine.audit_trail import verify_chains
from orchestrator.store.database import transaction
from orchestrator.store.tables import TaskRunRow
from tests.harness.engines import EngineFactory
from tests.harness.round_trips import count_round_trips, sql_engine_of
from workers.runtime import run_claimed

NAMESPACE = "tests.pending"
LOG_FLOW = f"""
id: log
namespace: {NAMESPACE}
tasks:
  - {{id: hello, type: io.kestra.plugin.core.log.Log, message: hello}}
"""
IO_FLOW = f"""
id: io
namespace: {NAMESPACE}
tasks:
  - {{id: fetch, type: io.kestra.plugin.core.log.Log, message: on io, workerGroup: {{key: io}}}}
"""


@pytest.fixture
def engine(database_url: str, redis_url: str, engine_factory: EngineFactory) -> Iterator[Engine]:
    engine = engine_factory(database_url, broker_url=redis_url)
    engine.deploy_flow(LOG_FLOW, actor="test")
    engine.deploy_flow(IO_FLOW, actor="test")
    yield engine


def _row(execution_id: str, task_id: str, now: datetime) -> TaskRunRow:
    at = TaskRunCoordinates(execution_id, task_id, None, None, 1)
    return TaskRunRow(
        id=at.task_run_id, execution_id=execution_id, task_id=task_id, parent_id=None, iteration=None, value=None,
        state=str(State.RUNNING),
        state_history=[{"state": "CREATED", "date": store.iso(now)}, {"state": "RUNNING", "date": store.iso(now)}],
        attempt=1, attempts=[], outputs=None, decision=None, retry_at=None, claim_owner="test", heartbeat_at=now,
        created_at=now, updated_at=now,
    )  # fmt: skip


def _count_rows(engine: Engine, execution_id: str) -> int:
    with transaction(engine.sessions) as session:
        return int(session.scalar(select(func.count()).where(TaskRunRow.execution_id == execution_id)) or 0)


def test_an_inline_task_run_is_written_once_as_it_ended(engine: Engine) -> None:
    execution_id = engine.submit(NAMESPACE, "log", inputs={}, actor="test").id
    at = TaskRunCoordinates(execution_id, "hello", None, None, 1)

    with count_round_trips(sql_engine_of(engine)) as counted:
        verdict, _, _ = engine.run_inline(
            execution_id, [at], join=True, skip_runs=False, owner="w1", celery_task_id="m1", requested_by=None,
            run=lambda claimed: run_claimed(claimed, engine),
        )  # fmt: skip

    assert verdict == Verdict.STOP  # the join ended the execution
    # No INSERT of its own at the claim, no UPDATE at its end: the commit statement inserts it, SUCCESS.
    assert not [s for s in counted.statements if s.startswith(("INSERT INTO task_runs", "UPDATE task_runs"))]
    [commit_write] = [s for s in counted.statements if "INSERT INTO task_runs" in s]
    assert "INSERT INTO audit_events" in commit_write
    with transaction(engine.sessions) as session:
        row = store.get_task_run(session, at.task_run_id)
        assert row is not None and row.state == "SUCCESS"
        assert [h["state"] for h in row.state_history] == ["CREATED", "RUNNING", "SUCCESS"]
        assert row.attempts[-1]["state"]["current"] == "SUCCESS" and row.claim_owner is None
        # Absent values stay JSON nulls, as an INSERT through the ORM stores them (the variables' filter reads them).
        assert session.scalar(select(func.jsonb_typeof(TaskRunRow.outputs)).where(TaskRunRow.id == row.id)) == "null"
        actions = [e.action for e in store.audit_events(session, execution_id) if e.subject == row.id]
        assert actions == ["task_run.created", "task_run.running", "task_run.success"]
        [report] = verify_chains(session, [execution_id])
        assert report.broken is None
    assert [line["message"] for line in engine.fetch_logs(execution_id)] == ["hello"]


def test_a_statement_that_may_read_task_runs_sees_a_row_waiting_to_be_written(engine: Engine) -> None:
    execution_id = engine.submit(NAMESPACE, "io", inputs={}, actor="test").id  # its task run is created by a claim
    with transaction(engine.sessions) as session:
        execution = store.lock_execution(session, execution_id)
        assert execution is not None
        store.hold_task_runs(session, execution_id)  # every task run known: a new one can wait
        row = _row(execution_id, "fetch", datetime.now(UTC))
        with count_round_trips(sql_engine_of(engine)) as counted:
            assert store.create_task_run(session, row, actor="test")
        assert counted.statements == []  # waiting
        found = session.scalars(select(TaskRunRow.state).where(TaskRunRow.execution_id == execution_id)).all()
        assert found == ["RUNNING"]  # written before the query ran
        assert row.seq < 1 << 62  # with the number the database gave it
    assert _count_rows(engine, execution_id) == 1  # once


def test_a_savepoint_while_a_row_waits_is_refused_and_nothing_is_written(engine: Engine) -> None:
    execution_id = engine.submit(NAMESPACE, "io", inputs={}, actor="test").id
    refused = pytest.raises(RuntimeError, match="savepoint begun while task runs wait")
    with refused, transaction(engine.sessions) as session:
        assert store.lock_execution(session, execution_id) is not None
        store.hold_task_runs(session, execution_id)
        assert store.create_task_run(session, _row(execution_id, "fetch", datetime.now(UTC)), actor="test")
        with session.begin_nested():
            pass
    assert _count_rows(engine, execution_id) == 0


def test_a_waiting_row_whose_id_exists_fails_its_transaction_instead_of_vanishing(engine: Engine) -> None:
    execution_id = engine.submit(NAMESPACE, "io", inputs={}, actor="test").id
    now = datetime.now(UTC)
    with transaction(engine.sessions) as session:
        assert store.create_task_run(session, _row(execution_id, "fetch", now), actor="test")  # not held: at once
    with transaction(engine.sessions) as session:
        before = len(store.audit_events(session, execution_id))
    with pytest.raises(IntegrityError), transaction(engine.sessions) as session:
        assert store.lock_execution(session, execution_id) is not None
        store.hold_new_execution(session, execution_id)  # wrongly says the execution has no task runs
        assert store.create_task_run(session, _row(execution_id, "fetch", now), actor="test")
    assert _count_rows(engine, execution_id) == 1
    with transaction(engine.sessions) as session:
        assert len(store.audit_events(session, execution_id)) == before  # the events went with the failed commit
