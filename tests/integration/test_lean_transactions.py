"""Round trips per operation: what a submit, an inline Log execution and an io task's claim and finish send.

Each statement is a round trip to PostgreSQL holding the execution's lock; these budgets keep the hot
paths lean (issue 18: "a lean transaction per task run"). A failure prints the statements sent.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine as DatabaseEngine

from orchestrator import store
from orchestrator.core.states import State
from orchestrator.engine import Engine, TaskOutcome, TaskRunCoordinates, Verdict
from orchestrator.store.database import transaction
from orchestrator.triggers.wiring import flows_listener_of
from tests.harness.engines import EngineFactory
from tests.harness.round_trips import RoundTrips, count_round_trips, sql_engine_of
from workers.runtime import run_claimed

LOG_FLOW = """
id: lean_log
namespace: tests.lean
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: hello
"""

LINES_FLOW = """
id: lean_lines
namespace: tests.lean
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: [one, two, three]
"""

IO_FLOW = """
id: lean_io
namespace: tests.lean
tasks:
  - id: fetch
    type: io.kestra.plugin.core.http.Request
    uri: http://127.0.0.1:9/nothing
"""


@pytest.fixture
def engine(database_url: str, redis_url: str, engine_factory: EngineFactory) -> Iterator[Engine]:
    engine = engine_factory(database_url, broker_url=redis_url)
    engine.deploy_flow(LOG_FLOW, actor="test")
    engine.deploy_flow(IO_FLOW, actor="test")
    engine.deploy_flow(LINES_FLOW, actor="test")
    yield engine


def _database(engine: Engine) -> DatabaseEngine:
    return sql_engine_of(engine)


def _submit(engine: Engine, flow_id: str) -> str:
    return engine.submit("tests.lean", flow_id, inputs={}, actor="test").id


def _run_log(engine: Engine, execution_id: str) -> Verdict:
    verdict, _, _ = engine.run_inline(
        execution_id,
        [TaskRunCoordinates(execution_id, "hello", None, None, 1)],
        join=True,
        skip_runs=False,
        owner="w1",
        celery_task_id="m1",
        requested_by=None,
        run=lambda claimed: run_claimed(claimed, engine),
    )
    return verdict


def _trace(count: RoundTrips) -> str:
    return count.summary() + "\n" + "\n".join(count.first_words())


def _warm(engine: Engine) -> None:
    """One execution first: flow caches filled and pooled connections opened, its flows listener heard (its
    ends read no flows version), as in a running worker."""
    listener = flows_listener_of(engine)
    assert listener is not None and listener.wait_healthy(timeout_s=10)
    _run_log(engine, _submit(engine, "lean_log"))


def test_a_submit_is_one_transaction_of_few_statements(engine: Engine) -> None:
    _warm(engine)
    with count_round_trips(_database(engine)) as count:
        _submit(engine, "lean_log")

    assert count.commits == 1, _trace(count)
    assert len(count.statements) <= 4, _trace(count)


def test_a_one_task_log_execution_runs_in_one_lean_worker_transaction(engine: Engine) -> None:
    _warm(engine)
    execution_id = _submit(engine, "lean_log")

    with count_round_trips(_database(engine)) as count:
        verdict = _run_log(engine, execution_id)

    assert verdict == Verdict.STOP  # the root join ended the execution
    assert engine.task_run_state(TaskRunCoordinates(execution_id, "hello", None, None, 1).task_run_id) == "SUCCESS"
    assert count.commits == 1, _trace(count)  # the Flow triggers' check needs no transaction of its own
    assert not [s for s in count.statements if "flow_revisions" in s], _trace(count)  # the listener's token
    assert len(count.statements) <= 9, _trace(count)


def test_an_io_task_is_claimed_and_finished_in_two_lean_transactions(engine: Engine) -> None:
    _warm(engine)
    at = TaskRunCoordinates(_submit(engine, "lean_io"), "fetch", None, None, 1)

    with count_round_trips(_database(engine)) as claiming:
        claimed = engine.claim(at, owner="w1", celery_task_id="m1")
    assert claimed is not None
    with count_round_trips(_database(engine)) as finishing:
        verdict = engine.finish(claimed, TaskOutcome(State.SUCCESS, outputs={"code": 200}))

    assert verdict == Verdict.OK
    assert engine.task_run_state(at.task_run_id) == "SUCCESS"
    assert claiming.commits == 1, _trace(claiming)
    assert len(claiming.statements) <= 7, _trace(claiming)
    assert finishing.commits == 1, _trace(finishing)
    assert len(finishing.statements) <= 6, _trace(finishing)


def test_the_log_lines_of_a_task_run_go_in_one_insert(engine: Engine) -> None:
    _warm(engine)
    execution_id = _submit(engine, "lean_lines")

    with count_round_trips(_database(engine)) as count:
        _run_log(engine, execution_id)

    inserts = [s for s in count.statements if "INSERT INTO log_lines" in s]
    assert len(inserts) == 1, _trace(count)
    # One statement of one cached text: the lines as one JSON array, with the transaction's audit events.
    assert "RETURNING" not in inserts[0] and "INSERT INTO audit_events" in inserts[0]
    logged = [line["message"] for line in engine.fetch_logs(execution_id)]
    assert logged == ["one", "two", "three"]


def test_thousands_of_log_lines_and_audit_events_go_in_one_statement(
    engine: Engine,
) -> None:
    execution_id = _submit(engine, "lean_log")
    at = datetime.now(UTC)
    lines = [
        {"execution_id": execution_id, "task_run_id": None, "task_id": None, "attempt": None, "namespace": "tests.lean",
         "flow_id": "lean_log", "level": "INFO", "message": f"line {i}", "at": at}
        for i in range(2500)
    ]  # fmt: skip

    with count_round_trips(_database(engine)) as count, transaction(engine.sessions) as session:
        store.insert_log_lines(session, lines)
        for i in range(2500):
            store.append_audit(session, execution_id, actor="test", action="test.event", subject=None, payload={"i": i})

    # Multi-row INSERTs below PostgreSQL's 65,535 parameters (about ten a row): a few statements, not 2,500.
    # Lines and events go as JSON arrays in one statement with the chain's head (no parameter limit to chunk for).
    [written] = [s for s in count.statements if "INSERT INTO log_lines" in s]
    assert "INSERT INTO audit_events" in written
    assert len(engine.fetch_logs(execution_id)) == 2500
    with transaction(engine.sessions) as session:
        assert len(store.audit_events(session, execution_id)) == 2502  # created, running, and these
