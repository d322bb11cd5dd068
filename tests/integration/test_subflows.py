"""Subflows (orchestrator.engine.subflows): a Subflow task run starts its child and ends as the child did."""

from __future__ import annotations

import pytest

from orchestrator import store
from orchestrator.core.states import State
from orchestrator.engine import ClaimedTaskRun, Engine, TaskRunCoordinates, Verdict, subflows
from orchestrator.store.database import read_only
from orchestrator.store.tables import ExecutionRow, TaskRunRow
from tests.harness.engines import EngineFactory

PARENT = """
id: parent
namespace: tests.subflows
tasks:
  - id: call
    type: io.kestra.plugin.core.flow.Subflow
    namespace: tests.subflows
    flowId: child
"""

CHILD = """
id: child
namespace: tests.subflows
inputs:
  - id: n
    type: INT
    required: false
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: child
"""


@pytest.fixture
def engine(database_url: str, redis_url: str, engine_factory: EngineFactory) -> Engine:
    return engine_factory(database_url, broker_url=redis_url)


def _claimed_call(engine: Engine) -> ClaimedTaskRun:
    engine.deploy_flow(CHILD, actor="t")
    engine.deploy_flow(PARENT, actor="t")
    parent = engine.submit("tests.subflows", "parent", inputs={}, actor="t")  # no worker: the call waits for us
    claimed = engine.claim(TaskRunCoordinates(parent.id, "call", None, None, 1), owner="w1", celery_task_id="c1")
    assert claimed is not None
    return claimed


def _start(engine: Engine, claimed: ClaimedTaskRun, *, wait: bool, flow_id: str = "child") -> Verdict:
    return subflows.start(
        engine, claimed, namespace="tests.subflows", flow_id=flow_id, inputs={"n": 1}, labels=[], wait=wait
    )


def _task_run(engine: Engine, claimed: ClaimedTaskRun) -> TaskRunRow:
    with read_only(engine.sessions) as session:
        row = store.get_task_run(session, claimed.coordinates.task_run_id)
        assert row is not None
        return row


def _child(engine: Engine, claimed: ClaimedTaskRun) -> ExecutionRow:
    with read_only(engine.sessions) as session:
        child = store.get_execution(session, _task_run(engine, claimed).outputs["executionId"])
        assert child is not None
        return child


def test_a_waiting_call_starts_its_child_and_stops_its_chain(engine: Engine) -> None:
    claimed = _claimed_call(engine)

    assert _start(engine, claimed, wait=True) == Verdict.STOP

    child = _child(engine, claimed)
    assert (child.flow_id, child.inputs, child.parent_execution_id) == (
        "child",
        {"n": 1},
        claimed.coordinates.execution_id,
    )
    assert _task_run(engine, claimed).state == "RUNNING"


def test_a_call_that_does_not_wait_succeeds_at_once(engine: Engine) -> None:
    claimed = _claimed_call(engine)

    assert _start(engine, claimed, wait=False) == Verdict.OK

    assert _task_run(engine, claimed).state == "SUCCESS"
    assert _child(engine, claimed).parent_execution_id is None


def test_a_call_to_an_unknown_flow_fails_its_task_run(engine: Engine) -> None:
    claimed = _claimed_call(engine)

    _start(engine, claimed, wait=True, flow_id="nowhere")

    assert _task_run(engine, claimed).state == "FAILED"


@pytest.mark.parametrize(("child_state", "expected"), [(State.SUCCESS, "SUCCESS"), (State.FAILED, "FAILED")])
def test_the_waiting_task_run_ends_as_its_child_did(engine: Engine, child_state: State, expected: str) -> None:
    claimed = _claimed_call(engine)
    _start(engine, claimed, wait=True)
    child_id = _child(engine, claimed).id
    with engine.transaction() as session:
        child = store.lock_execution(session, child_id)
        assert child is not None
        store.record_transition(session, child, child_state, actor="test")

    subflows.on_child_ended(engine, child_id)

    row = _task_run(engine, claimed)
    assert row.state == expected
    assert row.outputs is not None and row.outputs["executionId"] == child_id
