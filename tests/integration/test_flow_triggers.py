"""Flow triggers (orchestrator.triggers.flow_triggers): the reaction the triggers package adds to the engine."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator import store
from orchestrator.celery_app import create_celery_app
from orchestrator.core.states import State
from orchestrator.engine import Engine
from orchestrator.engine.reactions import DEFAULT_REACTIONS
from orchestrator.settings import load_settings
from orchestrator.store.database import make_engine, make_sessionmaker
from orchestrator.triggers import flow_triggers
from orchestrator.triggers.wiring import with_triggers
from tests.harness.engines import EngineFactory
from tests.integration.scheduling import engine, executions_of

__all__ = ["engine"]  # the fixture, shared with the scheduler's tests

UPSTREAM = """
id: upstream
namespace: tests.flowtriggers
tasks:
  - id: fail
    type: io.kestra.plugin.core.log.Log
    message: upstream
"""

DOWNSTREAM = """
id: downstream
namespace: tests.flowtriggers
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: "{{ trigger.executionId }}"
triggers:
  - id: after-upstream
    type: io.kestra.plugin.core.trigger.Flow
    conditions:
      - type: io.kestra.plugin.core.condition.ExecutionStatus
        in: [FAILED]
"""


@pytest.fixture
def bare_engine(database_url: str, redis_url: str, tmp_path: Path) -> Iterator[Engine]:
    """An engine built without the triggers package's reaction."""
    settings = load_settings(database_url=database_url, broker_url=redis_url, data_dir=tmp_path)
    db = make_engine(database_url, pool_size=2)
    engine = Engine(settings, make_sessionmaker(db), create_celery_app(settings))
    try:
        yield engine
    finally:
        engine.close()  # a test may have wired the triggers (and their flows listener) in
        db.dispose()


def _ended_upstream(engine: Engine, state: State) -> str:
    engine.deploy_flow(UPSTREAM, actor="t")
    engine.deploy_flow(DOWNSTREAM, actor="t")
    upstream = engine.submit("tests.flowtriggers", "upstream", inputs={}, actor="t")
    with engine.transaction() as session:
        execution = store.lock_execution(session, upstream.id)
        assert execution is not None
        store.record_transition(session, execution, state, actor="test")
    return upstream.id


def test_an_ended_execution_starts_the_flow_whose_trigger_accepts_it(engine: Engine) -> None:
    upstream_id = _ended_upstream(engine, State.FAILED)

    [downstream] = executions_of(engine, "downstream")

    assert downstream.trigger is not None and downstream.trigger["id"] == "after-upstream"
    assert downstream.trigger["variables"]["executionId"] == upstream_id


def test_an_execution_the_conditions_refuse_starts_nothing(engine: Engine) -> None:
    upstream_id = _ended_upstream(engine, State.SUCCESS)

    assert executions_of(engine, "downstream") == []
    assert flow_triggers.on_execution_ended(engine, upstream_id) == []


def test_on_execution_ended_returns_the_executions_it_started(engine: Engine) -> None:
    upstream_id = _ended_upstream(engine, State.FAILED)

    started = flow_triggers.on_execution_ended(engine, upstream_id)  # a second delivery starts a second one

    assert len(started) == 1
    assert started[0] in {e.id for e in executions_of(engine, "downstream")}


def test_an_engine_without_the_triggers_reaction_starts_no_flow(bare_engine: Engine) -> None:
    _ended_upstream(bare_engine, State.FAILED)

    assert executions_of(bare_engine, "downstream") == []


def test_the_triggers_reaction_runs_after_the_engines_own(bare_engine: Engine) -> None:
    with_triggers(bare_engine)

    assert bare_engine.reactions == [*DEFAULT_REACTIONS, flow_triggers.on_commit]


def test_a_flow_trigger_deployed_by_another_process_is_seen_at_the_next_end(
    engine: Engine, engine_factory: EngineFactory, database_url: str, redis_url: str
) -> None:
    engine.deploy_flow(UPSTREAM, actor="t")
    first = engine.submit("tests.flowtriggers", "upstream", inputs={}, actor="t")
    _end(engine, first.id, State.FAILED)  # this engine now knows of no Flow trigger (cached)
    other = engine_factory(database_url, broker_url=redis_url)  # another server's engine, its own cache key aside

    other.deploy_flow(DOWNSTREAM, actor="t")
    second = engine.submit("tests.flowtriggers", "upstream", inputs={}, actor="t")
    _end(engine, second.id, State.FAILED)

    [downstream] = executions_of(engine, "downstream")
    assert downstream.trigger is not None and downstream.trigger["variables"]["executionId"] == second.id


def _end(engine: Engine, execution_id: str, state: State) -> None:
    with engine.transaction() as session:
        execution = store.lock_execution(session, execution_id)
        assert execution is not None
        store.record_transition(session, execution, state, actor="test")


ON_LIVE_STATES = """
id: on-live-states
namespace: tests.flowtriggers
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: "{{ trigger.state }}"
triggers:
  - id: on-pause
    type: io.kestra.plugin.core.trigger.Flow
    states: [PAUSED]
    conditions:
      - type: io.kestra.plugin.core.condition.ExecutionFlow
        namespace: tests.flowtriggers
        flowId: upstream
"""


def test_a_trigger_whose_states_name_a_live_state_fires_on_that_change_only(engine: Engine) -> None:
    """Kestra evaluates Flow triggers on every execution state change (JdbcExecutor), each against its `states`."""
    engine.deploy_flow(UPSTREAM, actor="t")
    engine.deploy_flow(ON_LIVE_STATES, actor="t")
    upstream = engine.submit("tests.flowtriggers", "upstream", inputs={}, actor="t")  # CREATED -> RUNNING: no
    assert executions_of(engine, "on-live-states") == []
    with engine.transaction() as session:
        execution = store.lock_execution(session, upstream.id)
        assert execution is not None
        if execution.state != str(State.RUNNING):  # the Log already ran within the submit: set it back
            store.record_transition(session, execution, State.RUNNING, actor="test", override=True)
    engine.pause(upstream.id, actor="t")

    [started] = executions_of(engine, "on-live-states")
    assert started.trigger is not None and started.trigger["variables"]["state"] == "PAUSED"
    assert flow_triggers.on_execution_changed(engine, upstream.id, ["RUNNING", "SUCCESS"]) == []
    assert len(flow_triggers.on_execution_changed(engine, upstream.id, ["PAUSED"])) == 1
