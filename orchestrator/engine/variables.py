"""The variables an expression sees (`inputs`, `outputs`, `vars`, `flow`, `execution`, `taskrun`, ...)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from orchestrator.core.errors import ExpressionError, InputInvalid
from orchestrator.core.expressions import authored, render, render_typed, render_value
from orchestrator.core.flow import Flow, Input, InputType, TaskSpec
from orchestrator.core.ids import idempotency_key
from orchestrator.core.inputs import coerce_declared
from orchestrator.core.pebble_parents import PARENT_TASK_IDS
from orchestrator.core.states import State, worst_of
from orchestrator.engine import loop_scope
from orchestrator.store import iso_millis as iso
from orchestrator.store.tables import ExecutionRow, TaskRunRow


def task_outputs(runs: Sequence[TaskRunRow]) -> dict[str, Any]:
    """`outputs.<task>`, nested under each enclosing loop's value inside loops (`outputs.t.v1.v2`, as Kestra)."""
    by_id = {run.id: run for run in runs}
    outputs: dict[str, Any] = {}
    for run in runs:
        if run.outputs is None:
            continue
        chain = _value_chain(run, by_id)
        if not chain:
            outputs[run.task_id] = run.outputs
            continue
        node = outputs.setdefault(run.task_id, {})
        for value in chain[:-1]:
            node = node.setdefault(value, {})
        node[chain[-1]] = run.outputs
    return outputs


def _value_chain(run: TaskRunRow, by_id: dict[str, TaskRunRow]) -> list[str]:
    chain: list[str] = []
    current: TaskRunRow | None = run
    while current is not None:
        if current.value is not None:
            chain.insert(0, current.value)
        current = by_id.get(current.parent_id) if current.parent_id else None
    return chain


def base_variables(execution: ExecutionRow, flow: Flow, runs: Sequence[TaskRunRow]) -> dict[str, Any]:
    return {
        "flow": {
            "id": flow.id,
            "namespace": flow.namespace,
            "revision": execution.flow_revision,
            "tenantId": execution.tenant,
        },
        "execution": {
            "id": execution.id,
            "startDate": iso(execution.created_at),
            "originalId": execution.original_id or execution.id,
            "state": _state_seen(execution, flow, runs),
        },
        # Kestra has no `inputs` variable at all when an execution has none: `{{ inputs.x }}` then
        # fails on `inputs`, which is what its error messages (and users' expectations) name.
        **({"inputs": dict(execution.inputs)} if execution.inputs else {}),
        "outputs": task_outputs(runs),
        "tasks": task_states(runs),
        # The flow's own text is the only string render() may evaluate (core/authored.py); the rest is data.
        "vars": execution_vars(flow, runs),
        "labels": label_variables(execution.labels),
        "trigger": (execution.trigger or {}).get("variables", {}),
        "envs": {},
        "globals": {},
    }


def task_states(runs: Sequence[TaskRunRow]) -> dict[str, Any]:
    """`tasks`, as Kestra's RunVariables builds it: `tasks.<id>.state`, or `tasks.<id>.<value>.state` for the
    task runs of a loop iteration (what `tasksWithState()` reads)."""
    states: dict[str, Any] = {}
    for run in runs:
        if run.value is None:
            states[run.task_id] = {"state": run.state}
        else:
            by_value = states.get(run.task_id)
            by_value = dict(by_value) if isinstance(by_value, dict) else {}
            by_value[run.value] = {"state": run.state}
            states[run.task_id] = by_value
    return states


_SYSTEM = "system."


def label_variables(labels: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """`labels`, as Kestra's RunVariables maps them: `system.*` labels under `labels.system` (so
    `{{ labels.system.correlationId }}` reads), the first of a repeated key kept."""
    mapped: dict[str, Any] = {}
    for label in labels:
        key, value = label.get("key"), label.get("value")
        if key is None or value is None:
            continue
        if str(key).startswith(_SYSTEM):
            system = mapped.setdefault("system", {})
            if isinstance(system, dict):
                system.setdefault(str(key)[len(_SYSTEM) :], value)
        else:
            mapped.setdefault(str(key), value)
    return mapped


_VARIABLE_TASKS = frozenset({"SetVariables", "UnsetVariables"})


def execution_vars(flow: Flow, runs: Sequence[TaskRunRow]) -> dict[str, Any]:
    """`vars`: the flow's `variables`, then what each successful SetVariables / UnsetVariables run changed, in
    the order they ran (Kestra keeps them on the execution; here they are those task runs' outputs)."""
    # The flow's own variables are authored text; what SetVariables runs produced is data (core/authored.py).
    merged: dict[str, Any] = authored(flow.variables)
    kinds = {t.id: t.type for t in flow.iter_tasks() if t.type in _VARIABLE_TASKS}
    for run in runs:
        kind = kinds.get(run.task_id)
        if kind is None or run.state != State.SUCCESS or not run.outputs:
            continue
        if kind == "SetVariables":
            merged = deep_merge(merged, run.outputs.get("variables") or {})
        else:
            for key in run.outputs.get("unset") or []:
                merged = _without(merged, str(key).split("."))
    return merged


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Kestra's `MapUtils.deepMerge`: nested maps merged key by key, anything else replaced."""
    merged = dict(base)
    for key, value in update.items():
        current = merged.get(key)
        merged[key] = deep_merge(current, value) if isinstance(current, dict) and isinstance(value, dict) else value
    return merged


def _without(variables: dict[str, Any], path: list[str]) -> dict[str, Any]:
    head, rest = path[0], path[1:]
    if head not in variables:
        return variables
    copy = dict(variables)
    if not rest:
        del copy[head]
    elif isinstance(copy[head], dict):
        copy[head] = _without(copy[head], rest)
    return copy


def _state_seen(execution: ExecutionRow, flow: Flow, runs: Sequence[TaskRunRow]) -> str:
    """`execution.state`: the current state, except that `afterExecution` tasks see the decided final one."""
    after = {t.id for t in flow.after_execution}
    roots = [r for r in runs if r.parent_id is None]
    if after and any(r.task_id in after for r in roots):
        return str(worst_of(State(r.state) for r in roots if r.task_id not in after))
    return execution.state


def execution_variables(
    execution: ExecutionRow, flow: Flow, task: TaskSpec, run: TaskRunRow, runs: Sequence[TaskRunRow]
) -> dict[str, Any]:
    """Everything a task's expressions may read while `run` executes."""
    variables = base_variables(execution, flow, runs)
    variables["task"] = {"id": task.id, "type": task.type_name}
    variables["taskrun"] = {
        "id": run.id,
        "startDate": iso(run.created_at),
        "attemptsCount": run.attempt - 1,  # attempts before this one, as Kestra counts at render time
        "parentId": run.parent_id,
        "value": run.value,
        "idempotencyKey": idempotency_key(run.id),  # a Chorus extension: stable across attempts
    }
    if run.iteration is not None:
        variables["taskrun"]["iteration"] = run.iteration  # a loop child's index, from 0 as in Kestra
    parents, parent_task_ids = _parents(run, runs)
    variables["parents"] = parents
    variables[PARENT_TASK_IDS] = parent_task_ids
    if parents:
        variables["parent"] = parents[0]
    loop_scope.apply(variables, flow, run, runs)
    return variables


def _parents(run: TaskRunRow, runs: Sequence[TaskRunRow]) -> tuple[list[dict[str, Any]], list[str]]:
    """Kestra's `parents` (Execution.parents): the enclosing task runs nearest first that have a value (a loop
    iteration) or outputs, as `{taskrun: {value}, outputs}`; and, beside them, their task ids (what Kestra 2's
    parentOutput() needs, kept out of `parents` whose rendered form Kestra's tests compare)."""
    by_id = {r.id: r for r in runs}
    parents, task_ids = [], []
    current = by_id.get(run.parent_id) if run.parent_id else None
    while current is not None:
        if current.value is not None or current.outputs:
            entry: dict[str, Any] = {}
            if current.value is not None:
                entry["taskrun"] = {"value": current.value}
            if current.outputs:
                entry["outputs"] = current.outputs
            parents.append(entry)
            task_ids.append(current.task_id)
        current = by_id.get(current.parent_id) if current.parent_id else None
    return parents, task_ids


def flow_outputs(
    execution: ExecutionRow, flow: Flow, runs: Sequence[TaskRunRow], ignored: list[str] | None = None
) -> dict[str, Any]:
    """The flow's declared `outputs`, rendered against the finished execution.

    As in Kestra (RunContext.renderOutputs), an output declared `required: false` that cannot be rendered is
    null instead of failing the execution; why it was ignored is appended to `ignored`.
    """
    variables = base_variables(execution, flow, runs)
    rendered: dict[str, Any] = {}
    for output in flow.outputs:
        try:
            rendered[output.id] = _typed_output(output.type, output.value, variables)
        except ExpressionError as e:
            if output.required:
                raise
            rendered[output.id] = None
            if ignored is not None:
                ignored.append(f"Failed to render optional flow output '{output.id}'. Output is ignored: {e.message}")
    # As in Kestra, a declared scalar type converts the rendered value ("3" for an INT output is 3).
    scalars = [
        Input(id=o.id, type=o.type, required=False)
        for o in flow.outputs
        if o.type in _CONVERTED and rendered.get(o.id) is not None
    ]
    try:
        rendered.update(coerce_declared(scalars, rendered))
    except InputInvalid as e:
        raise ExpressionError(f"output {e.input_id}: {e.message}") from e
    return rendered


_CONVERTED = frozenset({InputType.INT, InputType.FLOAT, InputType.BOOLEAN, InputType.BOOL})


def _typed_output(kind: str | None, value: Any, variables: dict[str, Any]) -> Any:
    """A STRING output renders to text (maps and lists as JSON); other types keep native values."""
    if not isinstance(value, str):
        return render_value(value, variables)
    if (kind or "STRING").upper() == "STRING":
        return render(value, variables)
    return render_typed(value, variables)
