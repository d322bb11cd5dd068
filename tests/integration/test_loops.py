"""Loops (orchestrator.engine.loops): after an iteration, the loop ends, or its next iteration is due."""

from __future__ import annotations

from datetime import timedelta

import pytest

from orchestrator import store
from orchestrator.core.flow import Flow
from orchestrator.core.states import State
from orchestrator.engine import Engine, TaskRunCoordinates, loops
from orchestrator.store.tables import TaskRunRow
from tests.harness.engines import EngineFactory

LOOP = """
id: looping
namespace: tests.loops
tasks:
  - id: loop
    type: io.kestra.plugin.core.flow.LoopUntil
    condition: "{condition}"
    failOnMaxReached: true
    checkFrequency:
      maxIterations: 2
      interval: PT30S
    tasks:
      - id: step
        type: io.kestra.plugin.core.log.Log
        message: again
"""


@pytest.fixture
def engine(database_url: str, redis_url: str, engine_factory: EngineFactory) -> Engine:
    return engine_factory(database_url, broker_url=redis_url)


def _after_iteration(engine: Engine, condition: str, iterations_so_far: int = 0) -> tuple[bool, TaskRunRow, Flow]:
    """Deploy and start the loop, then ask `next_iteration` as the join does when an iteration has ended."""
    flow_row = engine.deploy_flow(LOOP.format(condition=condition), actor="t")
    flow = engine.flow_of(flow_row)
    execution = engine.submit("tests.loops", "looping", inputs={}, actor="t")  # no worker: the loop waits
    at = TaskRunCoordinates(execution.id, "loop", None, None, 1)
    assert engine.claim(at, owner="w1", celery_task_id="c1") is not None  # the loop's task run, RUNNING
    with engine.transaction() as session:
        locked = store.lock_execution(session, execution.id)
        parent = store.get_task_run(session, at.task_run_id, lock=True)
        assert locked is not None and parent is not None
        parent.decision = {**(parent.decision or {}), "loop": iterations_so_far}
        again = loops.next_iteration(engine, session, locked, flow, flow.task("loop"), parent)
    return again, parent, flow


def test_a_true_condition_ends_the_loop(engine: Engine) -> None:
    again, parent, _ = _after_iteration(engine, "true")

    assert not again
    assert parent.decision["max_reached"] is False


def test_a_false_condition_makes_the_next_iteration_due_after_the_interval(engine: Engine) -> None:
    before = store.utcnow()

    again, parent, _ = _after_iteration(engine, "false")

    assert again
    assert parent.decision["loop"] == 1
    assert parent.outputs is not None and parent.outputs["iterationCount"] == 2
    assert parent.retry_at is not None and parent.retry_at >= before + timedelta(seconds=30)


def test_max_iterations_end_the_loop_as_reached(engine: Engine) -> None:
    again, parent, _ = _after_iteration(engine, "false", iterations_so_far=1)  # the next would be the 3rd of 2

    assert not again
    assert parent.decision["max_reached"] is True


def test_a_loop_that_reached_its_limit_fails_with_fail_on_max_reached(engine: Engine) -> None:
    _, parent, flow = _after_iteration(engine, "false", iterations_so_far=1)

    assert loops.final_state(flow.task("loop"), parent, State.SUCCESS) is State.FAILED


def test_a_loop_ended_by_its_condition_keeps_its_state(engine: Engine) -> None:
    _, parent, flow = _after_iteration(engine, "true")

    assert loops.final_state(flow.task("loop"), parent, State.SUCCESS) is State.SUCCESS
