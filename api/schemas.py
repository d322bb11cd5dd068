"""Response shapes in Kestra's JSON form (camelCase), built from store rows."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from orchestrator import store
from orchestrator.core.errors import ChorusError
from orchestrator.core.parse import parse_flow
from orchestrator.store import iso
from orchestrator.store.database import object_session
from orchestrator.store.tables import ExecutionRow, FlowRevisionRow, LogLineRow, TaskRunRow


def _state(current: str, histories: Sequence[dict[str, Any]]) -> dict[str, Any]:
    start = histories[0]["date"] if histories else None
    end = histories[-1]["date"] if histories and current in _TERMINAL else None
    return {"current": current, "histories": list(histories), "startDate": start, "endDate": end}


_TERMINAL = {"SUCCESS", "WARNING", "FAILED", "KILLED", "CANCELLED", "SKIPPED", "RETRIED"}


def labels_list(labels: Any) -> list[dict[str, Any]]:
    """Labels as Kestra returns them: a list of {key, value}, whether written as a map or a list."""
    if isinstance(labels, dict):
        return [{"key": str(k), "value": v} for k, v in labels.items()]
    return [item for item in labels if isinstance(item, dict)] if isinstance(labels, list) else []


def flow_public(row: FlowRevisionRow, *, with_source: bool = True) -> dict[str, Any]:
    body = dict(row.document)
    if "labels" in body:
        body["labels"] = labels_list(body["labels"])
    body.update(
        id=row.flow_id,
        namespace=row.namespace,
        revision=row.revision,
        deleted=row.deleted,
        disabled=bool(row.document.get("disabled", False)),
        tenantId=row.tenant,
        updated=iso(row.created_at),
    )
    if with_source:
        body["source"] = row.source
    return body


def task_run_public(row: TaskRunRow, execution: ExecutionRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "executionId": row.execution_id,
        "namespace": execution.namespace,
        "flowId": execution.flow_id,
        "taskId": row.task_id,
        "parentTaskRunId": row.parent_id,
        "value": row.value,
        "iteration": row.iteration,
        "state": _state(row.state, row.state_history),
        "attempts": [
            {
                "state": _state(a["state"]["current"], a["state"]["histories"]),
                "workerId": a.get("worker"),
                "celeryTaskId": a.get("celeryTaskId"),
            }
            for a in row.attempts
        ],
        "outputs": row.outputs,
    }


_SECRET_MASK = "******"


@functools.lru_cache(maxsize=1024)
def _secret_ids(source: str) -> frozenset[str]:
    """The SECRET inputs of a flow revision (revisions never change, so the answer is cached by source)."""
    try:
        return frozenset(i.id for i in parse_flow(source).inputs if i.type == "SECRET")
    except ChorusError:
        return frozenset()


def _masked_inputs(row: ExecutionRow) -> dict[str, Any]:
    """SECRET input values never leave through the API (DESIGN invariant 8): they show as a mask."""
    session = object_session(row)
    if not row.inputs or session is None:
        return row.inputs
    flow = store.latest_flow(session, row.tenant, row.namespace, row.flow_id, revision=row.flow_revision)
    secrets = _secret_ids(flow.source) if flow is not None else frozenset()
    return {k: (_SECRET_MASK if k in secrets and v is not None else v) for k, v in row.inputs.items()}


def _in_loops(task_runs: Sequence[TaskRunRow]) -> set[str]:
    """The task runs inside a Loop's iterations, which Kestra 2 runs as sub-executions of their own."""
    loops = {t.id for t in task_runs if (t.decision or {}).get("kind") == "Loop"}
    inside: set[str] = set()
    for run in task_runs:  # a parent's task run comes before its children's
        if run.parent_id is not None and (run.parent_id in loops or run.parent_id in inside):
            inside.add(run.id)
    return inside


def execution_public(row: ExecutionRow, task_runs: Sequence[TaskRunRow]) -> dict[str, Any]:
    # As in Kestra 2, `taskRunList` holds a Loop's own task run and not its iterations' (their sub-executions'),
    # which Chorus lists beside it in `loopTaskRunList` so that nothing run is hidden.
    inside = _in_loops(task_runs)
    return {
        "id": row.id,
        "tenantId": row.tenant,
        "namespace": row.namespace,
        "flowId": row.flow_id,
        "flowRevision": row.flow_revision,
        "state": _state(row.state, row.state_history),
        "taskRunList": [task_run_public(t, row) for t in task_runs if t.id not in inside],
        **({"loopTaskRunList": [task_run_public(t, row) for t in task_runs if t.id in inside]} if inside else {}),
        "inputs": _masked_inputs(row),
        "outputs": row.outputs,
        "labels": row.labels,
        "variables": {},
        "trigger": row.trigger,
        "parentId": row.parent_execution_id,
        "originalId": row.original_id or row.id,
        "deleted": False,
        "metadata": {
            "attemptNumber": row.restarts + 1,
            "originalCreatedDate": iso(row.original_created_at or row.created_at),
        },
        **({"scheduleDate": iso(row.scheduled_at)} if row.scheduled_at else {}),
    }


def log_public(row: LogLineRow) -> dict[str, Any]:
    return {
        "executionId": row.execution_id,
        "namespace": row.namespace,
        "flowId": row.flow_id,
        "taskId": row.task_id,
        "taskRunId": row.task_run_id,
        "attemptNumber": row.attempt,
        "level": row.level,
        "message": row.message,
        "timestamp": iso(row.at),
    }
