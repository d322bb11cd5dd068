"""What a failed child does to its siblings (`core/child_policy.py`): `childFailurePolicy` (kestra-io/kestra#15366)
read and validated, the one sibling rule read from it, `onChildFailure` and `failFast`, and CONTINUE in the
planner's joins; the deprecated top-level `listeners` checked and warned about."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from orchestrator.core.child_policy import (
    ChildFailurePolicy,
    SiblingRule,
    flowable_state,
    parse,
    policy_of,
    sibling_rule,
)
from orchestrator.core.errors import FlowErrorDetail, FlowInvalid
from orchestrator.core.flow import Flow
from orchestrator.core.ids import task_run_id
from orchestrator.core.parse import parse_flow, parse_flow_with_warnings
from orchestrator.core.plan import Complete, Snapshot, StartPhase, TaskRunView, child_lists, decide_join, remaining
from orchestrator.core.states import State

EX = "exec1"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _flow(task: str) -> str:
    return f"id: f\nnamespace: tests\ntasks:\n{task}"


PARALLEL = _flow(
    """  - id: par
    type: io.kestra.plugin.core.flow.Parallel
    POLICY
    tasks:
      - {id: p1, type: io.kestra.plugin.core.log.Log, message: a}
      - {id: p2, type: io.kestra.plugin.core.log.Log, message: b}
"""
)

FOR_EACH = _flow(
    """  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: [1, 2, 3]
    LIMIT
    POLICY
    tasks:
      - {id: step, type: io.kestra.plugin.core.log.Log, message: x}
"""
)

DAG = _flow(
    """  - id: dag
    type: io.kestra.plugin.core.flow.Dag
    childFailurePolicy: CONTINUE
    tasks:
      - task: {id: a, type: io.kestra.plugin.core.log.Log, message: a}
      - task: {id: b, type: io.kestra.plugin.core.log.Log, message: b}
        dependsOn: [a]
      - task: {id: c, type: io.kestra.plugin.core.log.Log, message: c}
"""
)


def _errors(text: str) -> list[FlowErrorDetail]:
    with pytest.raises(FlowInvalid) as caught:
        parse_flow(text)
    return caught.value.errors


def _view(task_id: str, state: State, parent: str | None, iteration: int | None = None, **extra: object) -> TaskRunView:
    return TaskRunView(task_run_id(EX, task_id, parent, iteration), task_id, parent, iteration, state, 1, **extra)  # type: ignore[arg-type]


def _snap(*runs: TaskRunView) -> Snapshot:
    return Snapshot(EX, {r.id: r for r in runs}, NOW)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("FAIL_FAST", ChildFailurePolicy.FAIL_FAST),
        ("stop", ChildFailurePolicy.STOP),
        (" Continue ", ChildFailurePolicy.CONTINUE),
        ("CANCEL", None),
        (1, None),
    ],
)
def test_the_policy_is_read_whatever_its_case(value: object, expected: ChildFailurePolicy | None) -> None:
    assert parse(value) is expected


@pytest.mark.parametrize("kind", ["Parallel", "ForEach"])
def test_parallel_and_a_concurrent_for_each_accept_every_policy(kind: str) -> None:
    for value in ("FAIL_FAST", "STOP", "continue"):
        text = PARALLEL if kind == "Parallel" else FOR_EACH.replace("LIMIT", "concurrencyLimit: 0")
        flow, warnings = parse_flow_with_warnings(text.replace("POLICY", f"childFailurePolicy: {value}"))

        assert warnings == []
        assert policy_of(flow.tasks[0]) is parse(value)


@pytest.mark.parametrize(
    ("kind", "props", "expected"),
    [
        ("Parallel", "childFailurePolicy: FAIL_FAST", SiblingRule(State.KILLED, holds_new=True)),
        ("Parallel", "childFailurePolicy: stop", SiblingRule(holds_new=True)),
        ("Parallel", "childFailurePolicy: CONTINUE", SiblingRule()),
        ("Parallel", "onChildFailure: FAIL", SiblingRule(State.FAILED)),
        ("Parallel", "onChildFailure: cancel", SiblingRule(State.CANCELLED)),
        ("Parallel", "onChildFailure: CONTINUE", SiblingRule()),
        ("Parallel", "failFast: true", SiblingRule(State.KILLED)),
        ("Parallel", "failFast: false", SiblingRule()),
        ("Parallel", "concurrent: 2", SiblingRule()),
        ("Dag", "onChildFailure: FAIL", SiblingRule(State.FAILED)),
        ("Dag", "onChildFailure: CANCEL", SiblingRule(State.CANCELLED)),
        ("ForEach", "childFailurePolicy: FAIL_FAST\n    concurrencyLimit: 0", SiblingRule(State.KILLED, True)),
        ("ForEach", "childFailurePolicy: STOP\n    concurrencyLimit: 2", SiblingRule(holds_new=True)),
        ("ForEach", "childFailurePolicy: FAIL_FAST", SiblingRule()),  # sequential: the loop ignores it
        ("ForEach", "concurrencyLimit: 0", SiblingRule()),
    ],
)
def test_one_sibling_rule_whichever_property_says_it(kind: str, props: str, expected: SiblingRule) -> None:
    # kestra-io/kestra#15366 (childFailurePolicy) and Kestra 2's Parallel/Dag onChildFailure and failFast.
    children = "[{id: a, type: io.kestra.plugin.core.log.Log, message: a}]"
    if kind == "Dag":
        children = "[{task: {id: a, type: io.kestra.plugin.core.log.Log, message: a}}]"
    values = "\n    values: [1, 2]" if kind == "ForEach" else ""
    flow, _ = parse_flow_with_warnings(
        _flow(f"  - id: p\n    type: io.kestra.plugin.core.flow.{kind}{values}\n    {props}\n    tasks: {children}\n")
    )

    assert sibling_rule(flow.tasks[0]) == expected


def test_a_flowable_that_killed_its_siblings_ends_failed_and_others_keep_their_state() -> None:
    # Kestra's Parallel.resolveState: the cause is a failure, not a kill.
    fail_fast = parse_flow(PARALLEL.replace("POLICY", "failFast: true")).tasks[0]
    on_fail = parse_flow(PARALLEL.replace("POLICY", "onChildFailure: FAIL")).tasks[0]

    assert flowable_state(fail_fast, State.KILLED) is State.FAILED
    assert flowable_state(fail_fast, State.SUCCESS) is State.SUCCESS
    assert flowable_state(on_fail, State.KILLED) is State.KILLED  # killed by a person, not by the rule
    assert flowable_state(None, State.KILLED) is State.KILLED


def test_a_dag_accepts_the_policy() -> None:
    assert policy_of(parse_flow(DAG).tasks[0]) is ChildFailurePolicy.CONTINUE


def test_an_unknown_policy_is_refused_naming_the_field_and_the_choices() -> None:
    [error] = _errors(PARALLEL.replace("POLICY", "childFailurePolicy: SOMETIMES"))

    assert error.path == "tasks[0].childFailurePolicy"
    assert error.line == 6
    assert "FAIL_FAST, STOP or CONTINUE" in error.message


def test_the_policy_beside_on_child_failure_is_refused() -> None:
    [error] = _errors(PARALLEL.replace("POLICY", "childFailurePolicy: STOP\n    onChildFailure: FAIL"))

    assert error.path == "tasks[0].childFailurePolicy"
    assert "onChildFailure" in error.message


def test_other_flowables_refuse_the_policy() -> None:
    text = _flow(
        """  - id: seq
    type: io.kestra.plugin.core.flow.Sequential
    childFailurePolicy: STOP
    tasks:
      - {id: a, type: io.kestra.plugin.core.log.Log, message: a}
"""
    )

    [error] = _errors(text)

    assert error.path == "tasks[0].childFailurePolicy"
    assert "unknown property 'childFailurePolicy'" in error.message


@pytest.mark.parametrize("limit", ["", "concurrencyLimit: 1"])
def test_a_sequential_for_each_warns_that_it_ignores_the_policy(limit: str) -> None:
    flow, [warning] = parse_flow_with_warnings(
        FOR_EACH.replace("LIMIT", limit).replace("POLICY", "childFailurePolicy: CONTINUE")
    )

    assert warning.path == "tasks[0].childFailurePolicy"
    assert "no effect with concurrencyLimit 1" in warning.message
    assert policy_of(flow.tasks[0]) is None  # the iterations run one after the other


def _for_each(policy: str) -> Flow:
    return parse_flow(FOR_EACH.replace("LIMIT", "concurrencyLimit: 2").replace("POLICY", policy))


def test_continue_starts_the_iterations_left_after_a_failed_one_then_fails() -> None:
    flow = _for_each("childFailurePolicy: CONTINUE")
    each = _view("each", State.RUNNING, None, decision={"values": [1, 2, 3]})
    lists = child_lists(flow, flow.tasks[0], each.decision)
    # Lanes [0, 2] and [1, 3]: iteration 0 failed, which stopped its lane's chain before iteration 2.
    first = _snap(each, _view("step", State.FAILED, each.id, 0), _view("step", State.SUCCESS, each.id, 1))

    assert lists.continues
    assert decide_join(lists, each.id, first) == StartPhase(lists.main)

    done = _snap(*first.task_runs.values(), _view("step", State.SUCCESS, each.id, 2))
    assert decide_join(lists, each.id, done) == Complete(State.FAILED)


def test_continue_plans_the_next_iteration_of_a_lane_past_a_failed_one() -> None:
    flow = _for_each("childFailurePolicy: CONTINUE")
    each = _view("each", State.RUNNING, None, decision={"values": [1, 2, 3]})
    plan = remaining(
        flow, _snap(each, _view("step", State.FAILED, each.id, 0), _view("step", State.SUCCESS, each.id, 1))
    )

    assert "iteration=2" in repr(plan)


@pytest.mark.parametrize("policy", ["childFailurePolicy: STOP", "childFailurePolicy: FAIL_FAST", ""])
def test_without_continue_a_failure_ends_the_main_phase(policy: str) -> None:
    flow = _for_each(policy)
    each = _view("each", State.RUNNING, None, decision={"values": [1, 2, 3]})
    lists = child_lists(flow, flow.tasks[0], each.decision)
    snap = _snap(each, _view("step", State.FAILED, each.id, 0), _view("step", State.SUCCESS, each.id, 1))

    assert not lists.continues
    assert decide_join(lists, each.id, snap) == Complete(State.FAILED)


def test_continue_on_a_dag_skips_the_tasks_that_depend_on_a_failed_one() -> None:
    flow = parse_flow(DAG)
    dag = _view("dag", State.RUNNING, None, decision={"branch": "tasks"})
    lists = child_lists(flow, flow.tasks[0], dag.decision)
    failed = _snap(dag, _view("a", State.FAILED, dag.id))

    assert decide_join(lists, dag.id, failed) == StartPhase(lists.main)
    plan = repr(remaining(flow, failed))
    assert "task_id='c'" in plan and "task_id='b'" not in plan

    ended = _snap(dag, _view("a", State.FAILED, dag.id), _view("c", State.SUCCESS, dag.id))
    assert decide_join(lists, dag.id, ended) == Complete(State.FAILED)


LISTENERS = """id: f
namespace: tests
tasks:
  - {id: hello, type: io.kestra.plugin.core.log.Log, message: hi}
listeners:
  - description: on success
    conditions:
      - type: io.kestra.plugin.core.condition.ExecutionStatus
        in: [SUCCESS]
    tasks:
      - {id: listener, type: io.kestra.plugin.core.log.Log, message: never}
"""


def test_listeners_are_accepted_with_a_deprecation_warning_and_never_part_of_the_flow() -> None:
    flow, [warning] = parse_flow_with_warnings(LISTENERS)

    assert warning.path == "listeners" and warning.line == 5
    assert "deprecated" in warning.message
    assert [t.id for t in flow.tasks] == ["hello"]
    assert "listener" not in {t.id for t in flow.iter_tasks()}


@pytest.mark.parametrize(
    ("listeners", "path", "message"),
    [
        ("listeners: {tasks: []}", "listeners", "expected a list of listeners"),
        ("listeners:\n  - description: none", "listeners[0].tasks", "missing required property 'tasks'"),
        ("listeners:\n  - tasks: []", "listeners[0].tasks", "at least one task"),
        (
            "listeners:\n  - tasks: [{id: x, type: Log, message: m}]\n    when: x",
            "listeners[0].when",
            "unknown property",
        ),
        (
            "listeners:\n  - tasks: [{id: x, type: Log, message: m}]\n    conditions: {}",
            "listeners[0].conditions",
            "list",
        ),
        (
            "listeners:\n  - tasks: [{id: hello, type: Log, message: m}]",
            "listeners[0].tasks[0].id",
            "duplicate task id",
        ),
    ],
)
def test_a_listener_of_the_wrong_shape_is_refused_naming_the_field(listeners: str, path: str, message: str) -> None:
    text = "id: f\nnamespace: tests\ntasks:\n  - {id: hello, type: Log, message: hi}\n" + listeners + "\n"

    errors = _errors(text)

    assert any(e.path == path and message in e.message for e in errors), errors
