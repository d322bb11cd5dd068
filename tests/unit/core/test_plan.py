"""What remains to run, decided from a flow and its task runs alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from orchestrator.core.flow import Flow
from orchestrator.core.ids import task_run_id
from orchestrator.core.parse import parse_flow
from orchestrator.core.plan import (
    Chain,
    Complete,
    Fanout,
    Join,
    Run,
    Snapshot,
    StartPhase,
    TaskRunView,
    Wait,
    child_lists,
    decide_join,
    remaining,
)
from orchestrator.core.states import State

NOW = datetime(2026, 1, 1, tzinfo=UTC)
EX = "exec1"

FLOW = parse_flow(
    """
id: plan
namespace: tests
tasks:
  - id: a
    type: io.kestra.plugin.core.log.Log
    message: a
  - id: par
    type: io.kestra.plugin.core.flow.Parallel
    tasks:
      - id: p1
        type: io.kestra.plugin.core.debug.Return
        format: x
      - id: p2
        type: io.kestra.plugin.core.debug.Return
        format: y
  - id: disabled-one
    type: io.kestra.plugin.core.log.Log
    message: never
    disabled: true
  - id: b
    type: io.kestra.plugin.core.log.Log
    message: b
errors:
  - id: e
    type: io.kestra.plugin.core.log.Log
    message: e
finally:
  - id: f
    type: io.kestra.plugin.core.log.Log
    message: f
"""
)


def run(task_id: str, state: State, parent: str | None = None, *, attempt: int = 1, **extra: object) -> TaskRunView:
    return TaskRunView(task_run_id(EX, task_id, parent, None), task_id, parent, None, state, attempt, **extra)  # type: ignore[arg-type]


def snap(*runs: TaskRunView) -> Snapshot:
    return Snapshot(EX, {r.id: r for r in runs}, NOW)


def leaf(task_id: str, parent: str | None = None, attempt: int = 1) -> Run:
    """A Log or Return of the flow above: pure control tasks, planned as inline."""
    return Run(EX, task_id, parent, None, attempt, "control", enter=False, inline=True)


def test_a_new_execution_plans_every_top_level_task_then_the_root_join() -> None:
    plan = remaining(FLOW, snap())

    assert plan == Chain((leaf("a"), Run(EX, "par", None, None, 1, "control", enter=True), leaf("b"), Join(EX, None)))


def test_disabled_tasks_are_left_out_of_the_plan() -> None:
    plan = remaining(FLOW, snap())

    assert isinstance(plan, Chain)
    assert all(getattr(item, "task_id", None) != "disabled-one" for item in plan.items)


def test_finished_tasks_are_skipped_and_an_entered_parallel_continues_inside() -> None:
    par = run("par", State.RUNNING, decision={"branch": "tasks"})
    plan = remaining(FLOW, snap(run("a", State.SUCCESS), par, run("p1", State.SUCCESS, par.id)))

    assert plan == Chain((Fanout((leaf("p2", par.id),), Join(EX, par.id)), leaf("b"), Join(EX, None)))


def test_a_sequence_stops_at_its_first_failure_leaving_the_join() -> None:
    plan = remaining(FLOW, snap(run("a", State.FAILED)))

    assert plan == Chain((Join(EX, None),))


def test_a_retry_not_yet_due_blocks_the_sequence() -> None:
    plan = remaining(FLOW, snap(run("a", State.RETRYING, retry_at=NOW + timedelta(seconds=30))))

    assert plan is None


def test_a_due_retry_is_planned_as_the_next_attempt() -> None:
    plan = remaining(FLOW, snap(run("a", State.RETRYING, attempt=2, retry_at=NOW - timedelta(seconds=1))))

    assert isinstance(plan, Chain) and plan.items[0] == leaf("a", attempt=3)


def test_a_join_waits_while_a_child_is_running() -> None:
    assert decide_join(child_lists(FLOW, None, {}), None, snap(run("a", State.RUNNING))) == Wait()


def test_a_failed_main_phase_starts_the_errors_phase() -> None:
    decision = decide_join(child_lists(FLOW, None, {}), None, snap(run("a", State.FAILED)))

    assert isinstance(decision, StartPhase) and [s.task.id for lane in decision.lanes for s in lane] == ["e"]


def test_after_errors_the_finally_phase_starts() -> None:
    decision = decide_join(child_lists(FLOW, None, {}), None, snap(run("a", State.FAILED), run("e", State.SUCCESS)))

    assert isinstance(decision, StartPhase) and [s.task.id for lane in decision.lanes for s in lane] == ["f"]


def test_when_every_phase_ended_the_parent_takes_the_worst_state() -> None:
    runs = snap(run("a", State.FAILED), run("e", State.SUCCESS), run("f", State.SUCCESS))

    assert decide_join(child_lists(FLOW, None, {}), None, runs) == Complete(State.FAILED)


def test_a_clean_run_goes_through_finally_and_succeeds() -> None:
    done = [run(t, State.SUCCESS) for t in ("a", "par", "b")]
    lists = child_lists(FLOW, None, {})

    assert isinstance(decide_join(lists, None, snap(*done)), StartPhase)
    assert decide_join(lists, None, snap(*done, run("f", State.SUCCESS))) == Complete(State.SUCCESS)


def test_a_join_finds_an_unstarted_task_after_a_lost_message_and_restarts_the_phase() -> None:
    decision = decide_join(child_lists(FLOW, None, {}), None, snap(run("a", State.SUCCESS)))

    assert isinstance(decision, StartPhase) and [s.task.id for lane in decision.lanes for s in lane] == [
        "a",
        "par",
        "b",
    ]


def test_flow_fixture_is_a_flow() -> None:
    assert isinstance(FLOW, Flow)


def test_a_plan_of_joins_alone_starts_nothing() -> None:
    from orchestrator.core.plan import has_runs

    assert not has_runs(Chain((Join(EX, None),)))
    assert not has_runs(Fanout((), Join(EX, "p")))
    assert has_runs(Chain((leaf("a"), Join(EX, None))))
