"""Execution control (orchestrator.engine.operations): pause, resume and kill, and a kill freeing a concurrency slot."""

from __future__ import annotations

import pytest

from orchestrator import store
from orchestrator.core.errors import Conflict
from orchestrator.engine import Engine, operations
from orchestrator.store.database import read_only
from orchestrator.store.tables import ExecutionRow
from tests.harness.engines import EngineFactory

FLOW = """
id: work
namespace: tests.operations
{concurrency}
tasks:
  - id: step
    type: io.kestra.plugin.core.log.Log
    message: working
"""


@pytest.fixture
def engine(database_url: str, redis_url: str, engine_factory: EngineFactory) -> Engine:
    return engine_factory(database_url, broker_url=redis_url)


def _running(engine: Engine, concurrency: str = "") -> ExecutionRow:
    engine.deploy_flow(FLOW.format(concurrency=concurrency), actor="test")
    return engine.submit("tests.operations", "work", inputs={}, actor="test")  # no worker: it stays RUNNING


def _state(engine: Engine, execution_id: str) -> str:
    with read_only(engine.sessions) as session:
        execution = store.get_execution(session, execution_id)
        assert execution is not None
        return execution.state


def test_pause_parks_a_running_execution(engine: Engine) -> None:
    execution = _running(engine)

    operations.pause(engine, execution.id, actor="user:ann")

    assert _state(engine, execution.id) == "PAUSED"


def test_pause_refuses_an_execution_that_is_not_running(engine: Engine) -> None:
    execution = _running(engine)
    operations.pause(engine, execution.id, actor="user:ann")

    with pytest.raises(Conflict):
        operations.pause(engine, execution.id, actor="user:ann")


def test_resume_runs_a_paused_execution_again(engine: Engine) -> None:
    execution = _running(engine)
    operations.pause(engine, execution.id, actor="user:ann")

    operations.resume(engine, execution.id, {}, actor="user:ann")

    assert _state(engine, execution.id) == "RUNNING"


def test_kill_ends_the_execution_and_its_unfinished_task_runs(engine: Engine) -> None:
    execution = _running(engine)

    operations.kill(engine, execution.id, actor="user:ann")

    assert _state(engine, execution.id) == "KILLED"
    with read_only(engine.sessions) as session:
        assert {run.state for run in store.task_runs_of(session, execution.id)} <= {"KILLED"}


def test_kill_refuses_an_execution_that_has_ended(engine: Engine) -> None:
    execution = _running(engine)
    operations.kill(engine, execution.id, actor="user:ann")

    with pytest.raises(Conflict):
        operations.kill(engine, execution.id, actor="user:ann")


def test_a_kill_frees_the_concurrency_slot_for_the_oldest_queued_execution(engine: Engine) -> None:
    limit = "concurrency:\n  limit: 1\n  behavior: QUEUE"
    first = _running(engine, limit)
    second = engine.submit("tests.operations", "work", inputs={}, actor="test")
    assert _state(engine, second.id) == "QUEUED"

    operations.kill(engine, first.id, actor="user:ann")

    assert _state(engine, second.id) == "RUNNING"
