"""Kestra 2's Loop at render time: the `item` variable, iteration-isolated `outputs`, and the Loop's outputs.

A Loop iteration is, in Kestra 2, a sub-execution of its own: every task inside it, at any depth, reads the
current value as `item.value` (`item.index`, `item.key` for a map, `item.parent` for the nearest enclosing
Loop, `item.parents[n]` for all of them, outermost first), and `outputs.<task>` means that task's run *in
this iteration*. Chorus runs the iterations as ForEach's lanes of task runs in one execution, so the
isolation is made here, at render time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from orchestrator.core.expressions import is_true, render, render_typed, render_value
from orchestrator.core.flow import Flow, TaskSpec
from orchestrator.core.states import State
from orchestrator.store.tables import TaskRunRow

LOOP = "Loop"
_NEVER = datetime.min.replace(tzinfo=UTC)  #: the end of a task run not stamped yet (unit tests)


def _loop_ids(flow: Flow) -> frozenset[str]:
    return frozenset(t.id for t in flow.iter_tasks() if t.type == LOOP)


def _iterations(
    run: TaskRunRow, by_id: Mapping[str, TaskRunRow], loops: frozenset[str]
) -> list[tuple[TaskRunRow, int]]:
    """The Loop iterations `run` is inside, nearest first, as (Loop task run, iteration index)."""
    chain: list[tuple[TaskRunRow, int]] = []
    current = run
    while current.parent_id is not None:
        parent = by_id.get(current.parent_id)
        if parent is None:
            break
        if parent.task_id in loops and current.iteration is not None:
            chain.append((parent, current.iteration))
        current = parent
    return chain


def enclosing_loops(flow: Flow, run: TaskRunRow, lookup: Callable[[str], TaskRunRow | None]) -> list[TaskRunRow]:
    """The Loop task runs `run` is inside, nearest first: they pause with it (Kestra's LoopCaseTest.loopWithPause:
    a paused iteration is a paused sub-execution, and its Loop task run passes through PAUSED)."""
    loops = _loop_ids(flow)
    found: list[TaskRunRow] = []
    parent = lookup(run.parent_id) if loops and run.parent_id else None
    while parent is not None:
        if parent.task_id in loops:
            found.append(parent)
        parent = lookup(parent.parent_id) if parent.parent_id else None
    return found


def _item(loop_run: TaskRunRow, index: int) -> dict[str, Any]:
    decision = loop_run.decision or {}
    values = decision.get("values") or []
    keys = decision.get("keys")
    item: dict[str, Any] = {"index": index, "value": values[index] if index < len(values) else None}
    if isinstance(keys, list) and index < len(keys):
        item["key"] = keys[index]
    return item


def apply(variables: dict[str, Any], flow: Flow, run: TaskRunRow, runs: Sequence[TaskRunRow]) -> None:
    """Add `item` and scope `outputs` to the current iteration when `run` is inside a Loop (no-op otherwise)."""
    loops = _loop_ids(flow)
    if not loops:
        return
    by_id = {r.id: r for r in runs}
    chain = _iterations(run, by_id, loops)
    if not chain:
        return
    items = [_item(loop_run, index) for loop_run, index in chain]
    item = dict(items[0])
    # Kestra's LoopCaseTest.loopNested: `parents` lists the enclosing Loops outermost first, so the last
    # one is `parent`, the nearest.
    item["parents"] = items[:0:-1]
    if len(items) > 1:
        item["parent"] = items[1]
    variables["item"] = item
    # Outputs of the task runs in this very iteration shadow the value-keyed ones, as in a sub-execution.
    nearest = (chain[0][0].id, chain[0][1])
    scoped = dict(variables.get("outputs") or {})
    for other in runs:
        if other.outputs is None:
            continue
        inner = _iterations(other, by_id, loops)
        if inner and (inner[0][0].id, inner[0][1]) == nearest:
            scoped[other.task_id] = other.outputs
    variables["outputs"] = scoped


def keeps_failures(spec: TaskSpec) -> bool:
    """A Loop with `transmitFailed: false`: a failed iteration does not fail the Loop."""
    return spec.type == LOOP and str(spec.properties.get("transmitFailed", True)).lower() == "false"


def _iteration_state(children: Sequence[TaskRunRow]) -> State:
    states = [State(c.state) for c in children]
    for worst in (State.KILLED, State.FAILED, State.WARNING):
        if worst in states:
            return worst
    return State.SUCCESS


def _counted_iterations(spec: TaskSpec, children: Mapping[int, list[TaskRunRow]]) -> list[int]:
    """The iterations `terminatedIterations` counts, in the order they ended.

    Kestra's LoopExecutionEventMessageHandler counts each iteration as its sub-execution ends; with
    `transmitFailed` (the default) the first one to end in failure ends the Loop there, so iterations that
    were still running then (concurrent ones; they end later here) are not counted (LoopCaseTest.loopFailed:
    three concurrent failing iterations, `terminatedIterations` {FAILED: 1}). Iterations never started
    (a failed one ended the Loop first) are not counted either.
    """

    def ended_at(index: int) -> datetime:
        return max((run.updated_at for run in children[index] if run.updated_at is not None), default=_NEVER)

    order = sorted(children, key=lambda index: (ended_at(index), index))
    if keeps_failures(spec):
        return order
    counted: list[int] = []
    for index in order:
        counted.append(index)
        if _iteration_state(children[index]).is_failure:
            break
    return counted


def _ended_iterations(spec: TaskSpec, children: Mapping[int, list[TaskRunRow]]) -> list[int]:
    """The iterations over: their last task ended, or one of their tasks failed (the rest never runs)."""
    enabled = [t.id for t in spec.branches.get("tasks", ()) if not t.disabled]
    last = enabled[-1] if enabled else None
    ended = []
    for index, runs in sorted(children.items()):
        states = [State(r.state) for r in runs]
        if not all(s.is_terminal for s in states):
            continue
        if any(s.is_failure for s in states) or any(r.task_id == last for r in runs):
            ended.append(index)
    return ended


def break_due(
    spec: TaskSpec,
    loop_run: TaskRunRow,
    runs: Sequence[TaskRunRow],
    variables_of: Callable[[TaskRunRow], dict[str, Any]],
) -> bool:
    """Kestra 2's Loop `breakWhen`: whether an ended iteration makes the Loop start no new one.

    Rendered for each ended iteration with its `item`, its own `outputs` and `iteration` (`executionId`,
    `state`, and `outputs`, the Loop's declared outputs for that iteration); truthy as Kestra reads it
    (`true`, a non-empty text other than `false`, a non-zero number). Iterations already started go on.
    """
    expression = spec.properties.get("breakWhen")
    if expression is None:
        return False
    children: dict[int, list[TaskRunRow]] = {}
    for run in runs:
        if run.parent_id == loop_run.id and run.iteration is not None:
            children.setdefault(run.iteration, []).append(run)
    declared = spec.properties.get("outputs")
    for index in _ended_iterations(spec, children):
        variables = variables_of(children[index][-1])
        outputs: dict[str, Any] = {}
        if isinstance(declared, list):
            for o in declared:
                if isinstance(o, dict) and "id" in o:
                    outputs[str(o["id"])] = _typed(str(o.get("type") or "STRING"), o.get("value"), variables)
        variables["iteration"] = {
            "executionId": loop_run.execution_id,
            "state": str(_iteration_state(children[index])),
            "outputs": outputs,
        }
        if is_true(render(str(expression), variables)):
            return True
    return False


def _typed(kind: str, value: Any, variables: dict[str, Any]) -> Any:
    if not isinstance(value, str):
        return render_value(value, variables)
    return render(value, variables) if kind.upper() == "STRING" else render_typed(value, variables)


def stores_outputs(spec: TaskSpec, loop_run: TaskRunRow) -> bool:
    """Kestra's `fetchType`: STORE, or AUTO over values read from internal storage, keeps each iteration's
    outputs in a file (its `uri`) instead of in the Loop's outputs."""
    fetch = str(spec.properties.get("fetchType") or "AUTO").upper()
    return fetch == "STORE" or (fetch == "AUTO" and bool((loop_run.decision or {}).get("fromStorage")))


def final_outputs(
    spec: TaskSpec,
    loop_run: TaskRunRow,
    runs: Sequence[TaskRunRow],
    variables_of: Callable[[TaskRunRow], dict[str, Any]],
    store: Callable[[int, dict[str, Any]], str] | None = None,
) -> dict[str, Any]:
    """The Loop task run's outputs once every iteration ended: counts, and the declared per-iteration outputs
    (each kept in a file by `store`, which returns its URI, when the Loop stores its outputs)."""
    values = (loop_run.decision or {}).get("values") or []
    children: dict[int, list[TaskRunRow]] = {}
    for run in runs:
        if run.parent_id == loop_run.id and run.iteration is not None:
            children.setdefault(run.iteration, []).append(run)
    terminated: dict[str, int] = {}
    for index in _counted_iterations(spec, children):
        state = str(_iteration_state(children[index]))
        terminated[state] = terminated.get(state, 0) + 1
    outputs: dict[str, Any] = {
        **(loop_run.outputs or {}),
        "iterationCount": len(values),
        "runningIterations": 0,
        "terminatedIterations": terminated,
    }
    declared = spec.properties.get("outputs")
    if isinstance(declared, list) and declared:
        collected = []
        for index in range(len(values)):
            last = children.get(index, [])[-1:]
            if not last:
                continue
            variables = variables_of(last[0])
            item = _item(loop_run, index)
            rendered = {
                str(o["id"]): _typed(str(o.get("type") or "STRING"), o.get("value"), variables)
                for o in declared
                if isinstance(o, dict) and "id" in o
            }
            kept: dict[str, Any] = {"uri": store(index, rendered)} if store is not None else rendered
            collected.append(
                {"item": {"value": item["value"], "iteration": index, "key": item.get("key")}, "outputs": kept}
            )
        outputs["outputs"] = collected
    return outputs
