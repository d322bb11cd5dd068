"""What a task sees of the task runs around it, on a real PostgreSQL with the workers' own bodies: an If's
`evaluationResult` output (Kestra's If.Output) and `parents` that list an If outside any loop, so that Kestra 2's
parentOutput() finds it (ParentOutputFunctionTest#parentOutput and #parentsOutput)."""

from __future__ import annotations

from sqlalchemy import select

from orchestrator.core.states import State
from orchestrator.engine import Engine
from orchestrator.store.tables import TaskRunRow
from tests.harness.engines import EngineFactory
from workers.attempts import LocalRunner

FLOW = """
id: parents
namespace: tests.parents
inputs:
  - id: go
    type: BOOLEAN
    defaults: true
tasks:
  - id: if
    type: io.kestra.plugin.core.flow.If
    condition: "{{ inputs.go }}"
    then:
      - id: each
        type: io.kestra.plugin.core.flow.ForEach
        values: [1, 2]
        tasks:
          - id: seen
            type: io.kestra.plugin.core.output.OutputValues
            values:
              outermost: "{{ parentOutput(0) }}"
              direct: "{{ parentOutput() }}"
    else:
      - id: refused
        type: io.kestra.plugin.core.output.OutputValues
        values:
          result: "{{ outputs.if.evaluationResult }}"
          past: "{{ parentOutput(1) }}"
"""


def _engine(engine_factory: EngineFactory, database_url: str, broker: str) -> Engine:
    engine = engine_factory(database_url, broker_url=broker, local_runner=LocalRunner(), local_drive_max_ms=60_000)
    engine.deploy_flow(FLOW, actor="test")
    return engine


def _outputs(engine: Engine, execution_id: str, task_id: str) -> list[dict[str, object] | None]:
    with engine.sessions() as session:
        rows = session.scalars(
            select(TaskRunRow).where(TaskRunRow.execution_id == execution_id, TaskRunRow.task_id == task_id)
        )
        return [row.outputs for row in rows]


def test_the_if_outputs_its_result_and_a_child_of_a_loop_inside_it_reads_it_with_parent_output(
    database_url: str, idle_broker_url: str, engine_factory: EngineFactory
) -> None:
    engine = _engine(engine_factory, database_url, idle_broker_url)

    row = engine.submit("tests.parents", "parents", inputs={}, actor="test")

    assert row.state == State.SUCCESS
    assert _outputs(engine, row.id, "if") == [{"evaluationResult": True}]
    seen = _outputs(engine, row.id, "seen")
    assert [o["values"]["outermost"] for o in seen if o] == ['{"evaluationResult":true}'] * 2  # type: ignore[index]


def test_a_false_condition_outputs_false_and_a_parent_index_past_the_parents_fails_the_task(
    database_url: str, idle_broker_url: str, engine_factory: EngineFactory
) -> None:
    engine = _engine(engine_factory, database_url, idle_broker_url)

    row = engine.submit("tests.parents", "parents", inputs={"go": "false"}, actor="test")

    assert row.state == State.FAILED
    assert _outputs(engine, row.id, "if") == [{"evaluationResult": False}]
