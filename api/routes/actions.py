"""Execution actions: kill, pause, resume, restart, ... on Kestra 2.0's `/actions/` paths and the older ones.

Kestra 2.0 (kestrapy) answers every `/executions/{id}/actions/{action}` with the Execution JSON;
Kestra <= 1.x and the MCP server call `/executions/{id}/{action}` and get 202 (kill) or 204 (resume).
One handler serves both paths of an action. The older paths collide with `POST /executions/{namespace}/{flowId}`:
there the action wins only for a real execution id, else the request creates an execution of the flow named
like the action. Handlers whose 2.0 path has FastAPI validate a body (state, change-status, labels) keep a
separate older-path handler: that one must not read the body before it knows which of the two it serves.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Header, Request, Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from api.action_io import execution_answer, is_execution, json_text, resume_inputs, validated_body
from api.deps import ActorDep, EngineDep
from api.errors import QueryInvalid
from api.idempotency import check_key, once
from orchestrator.core.errors import Conflict, InputInvalid
from orchestrator.core.states import State
from orchestrator.engine import Engine
from orchestrator.engine.ledger_replay import MODES

router = APIRouter(tags=["Executions"])

#: The answer model of 2.0 paths, stated since the handler may also answer the older path's bare Response.
_EXECUTION = dict[str, Any]


def _on_older_path(request: Request) -> bool:
    """Whether the route matched is Kestra <= 1.x's `/executions/{id}/{action}` (not `/actions/{action}`)."""
    path: str = request.scope["route"].path
    return path.rsplit("/", 2)[-2] != "actions"


async def _flow_named_like(action: str, request: Request, eng: Engine, who: str) -> dict[str, Any] | None:
    """On an older path whose `{id}` is no execution: Kestra's create-execution path for a flow named `action`
    in namespace `{id}` (the two path shapes collide), answered with the new execution; None for a real id."""
    namespace = request.path_params["execution_id"]
    if not _on_older_path(request) or await run_in_threadpool(is_execution, eng, namespace):
        return None
    from api.deps import authenticate, submit_groups
    from api.routes.executions import create_execution

    return await create_execution(
        namespace,
        action,
        request,
        labels=list(request.query_params.getlist("labels")),
        wait=request.query_params.get("wait", "false").lower() == "true",
        revision=None,
        scheduleDate=_schedule_date(request.query_params.get("scheduleDate")),
        principal=authenticate(request),
        eng=eng,
        groups=submit_groups(request),
        who=who,
    )


def _schedule_date(raw: str | None) -> datetime | None:
    if raw is None:
        return None
    try:
        return datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError as e:
        raise QueryInvalid("scheduleDate", f"expected an ISO-8601 date-time, got {raw!r}") from e


@router.delete("/executions/{execution_id}/actions/kill", response_model=_EXECUTION)
@router.delete("/executions/{execution_id}/kill", status_code=202, response_model=None, name="kill_legacy")
async def kill(
    execution_id: str, request: Request, eng: EngineDep, who: ActorDep, compensate: bool = False
) -> dict[str, Any] | Response:
    # `compensate` (Chorus): undo what had succeeded (the tasks' `compensate` lists) before the execution ends KILLED.
    await run_in_threadpool(eng.kill, execution_id, actor=who, compensate=compensate)
    if _on_older_path(request):
        return Response(status_code=202)
    return await run_in_threadpool(execution_answer, eng, execution_id)


@router.post("/executions/{execution_id}/actions/resume", response_model=_EXECUTION)
@router.post("/executions/{execution_id}/resume", status_code=204, response_model=None, name="resume_legacy")
async def resume(execution_id: str, request: Request, eng: EngineDep, who: ActorDep) -> dict[str, Any] | Response:
    created = await _flow_named_like("resume", request, eng, who)
    if created is not None:
        return created
    inputs = await resume_inputs(request, eng, execution_id)
    await run_in_threadpool(eng.resume, execution_id, inputs, actor=who)
    if _on_older_path(request):
        return Response(status_code=204)
    return await run_in_threadpool(execution_answer, eng, execution_id)


@router.post("/executions/{execution_id}/actions/pause")
@router.post("/executions/{execution_id}/pause", name="pause_legacy")
async def pause(execution_id: str, request: Request, eng: EngineDep, who: ActorDep) -> dict[str, Any]:
    created = await _flow_named_like("pause", request, eng, who)
    if created is not None:
        return created
    await run_in_threadpool(eng.pause, execution_id, actor=who)
    return await run_in_threadpool(execution_answer, eng, execution_id)


@router.post("/executions/{execution_id}/actions/restart")
@router.post("/executions/{execution_id}/restart", name="restart_legacy")
async def restart(
    execution_id: str,
    request: Request,
    eng: EngineDep,
    who: ActorDep,
    idempotency_key: str | None = Header(default=None, alias="Idempotency-Key"),
) -> dict[str, Any]:
    created = await _flow_named_like("restart", request, eng, who)
    if created is not None:
        return created
    key = check_key(idempotency_key)
    restarted: list[str] = []

    def run() -> str:
        restarted.append(eng.restart(execution_id, actor=who).state)
        return execution_id

    await run_in_threadpool(once, eng.sessions, f"{who}|restart|{execution_id}", key, run)
    body = await run_in_threadpool(execution_answer, eng, execution_id)
    if restarted == ["RESTARTED"]:
        body["state"] = as_restarted(body["state"])
    return body


def as_restarted(state: dict[str, Any]) -> dict[str, Any]:
    """The execution's state as the restart left it, as Kestra answers: RESTARTED, its history ending there.

    The answer is read after the restart was dispatched, so a RUNNING (or later) entry may already follow.
    """
    histories = list(state.get("histories") or [])
    last = max((i for i, h in enumerate(histories) if h.get("state") == "RESTARTED"), default=len(histories) - 1)
    return {**state, "current": "RESTARTED", "histories": histories[: last + 1], "endDate": None}


@router.post("/executions/{execution_id}/actions/replay")
@router.post("/executions/{execution_id}/replay")
async def replay(
    execution_id: str,
    eng: EngineDep,
    who: ActorDep,
    taskRunId: str | None = None,  # Kestra's query parameter name
    revision: int | None = None,
    mode: str | None = None,
    liveFrom: str | None = None,
    idempotency_key: str | None = Header(default=None, alias="Idempotency-Key"),
) -> dict[str, Any]:
    """A new execution from a task run (or from the start); the answer is the new execution.

    `mode=ledger` (a Chorus extension) serves the copy's model and agent tool calls from this execution's
    records, up to the task `liveFrom` (from it on they are live). Without it, Kestra's replay.
    With an `Idempotency-Key`, a repeat of the same request (a double-click) answers with the first one's.
    """
    if mode is not None and mode not in MODES:
        raise QueryInvalid("mode", f"must be one of {', '.join(MODES)} (or absent for Kestra's replay), got {mode!r}")
    key = check_key(idempotency_key)
    scope = f"{who}|replay|{execution_id}|{taskRunId}|{revision}|{mode}|{liveFrom}"
    new_id = await run_in_threadpool(
        once,
        eng.sessions,
        scope,
        key,
        lambda: (
            eng.replay(
                execution_id,
                task_run_id=taskRunId,
                revision=revision,
                actor=who,
                ledger=mode == "ledger",
                live_from=liveFrom,
            ).id
        ),
    )
    return await run_in_threadpool(execution_answer, eng, new_id)


@router.post("/executions/{execution_id}/replay-with-inputs")
async def replay_with_inputs_legacy(
    execution_id: str,
    request: Request,
    eng: EngineDep,
    who: ActorDep,
    taskRunId: str | None = None,  # Kestra's query parameter name
    revision: int | None = None,
) -> dict[str, Any]:
    """Kestra's path (ExecutionController.replayExecutionWithinputs), or a flow named `replay-with-inputs`."""
    created = await _flow_named_like("replay-with-inputs", request, eng, who)
    if created is not None:
        return created
    return await replay_with_inputs(execution_id, request, eng, who, taskRunId, revision)


@router.post("/executions/{execution_id}/actions/replay-with-inputs")
async def replay_with_inputs(
    execution_id: str,
    request: Request,
    eng: EngineDep,
    who: ActorDep,
    taskRunId: str | None = None,  # Kestra's query parameter name
    revision: int | None = None,
) -> dict[str, Any]:
    """A new execution from a task run (or from the start) with new inputs; the answer is the new execution."""
    inputs = await resume_inputs(request, eng, execution_id)
    new = await run_in_threadpool(
        lambda: eng.replay(execution_id, task_run_id=taskRunId, revision=revision, inputs=inputs, actor=who)
    )
    return await run_in_threadpool(execution_answer, eng, new.id)


class TaskRunStateChange(BaseModel):
    """Kestra's body for changing one task run's state."""

    taskRunId: str  # Kestra's field name
    state: State


@router.post("/executions/{execution_id}/state")
async def change_task_run_state_legacy(
    execution_id: str, request: Request, eng: EngineDep, who: ActorDep
) -> dict[str, Any]:
    created = await _flow_named_like("state", request, eng, who)
    if created is not None:
        return created
    change = validated_body(TaskRunStateChange, await request.body())
    return await change_task_run_state(execution_id, change, eng, who)


@router.post("/executions/{execution_id}/actions/state")
async def change_task_run_state(
    execution_id: str, change: TaskRunStateChange, eng: EngineDep, who: ActorDep
) -> dict[str, Any]:
    row = await run_in_threadpool(
        lambda: eng.change_task_run_state(execution_id, change.taskRunId, change.state, actor=who)
    )
    body = await run_in_threadpool(execution_answer, eng, execution_id)
    # An ended execution restarts: the answer shows it as the change left it (RESTARTED), as Kestra's does
    # (ExecutionServiceTest.changeStateWithErrorBranch).
    if row.state == "RESTARTED":
        body["state"]["current"] = "RESTARTED"
    return body


@router.post("/executions/{execution_id}/change-status")
async def change_status_legacy(execution_id: str, request: Request, eng: EngineDep, who: ActorDep) -> dict[str, Any]:
    created = await _flow_named_like("change-status", request, eng, who)
    if created is not None:
        return created
    status = validated_body(State, json_text(request.query_params.get("status")))
    return await change_status(execution_id, status, eng, who)


@router.post("/executions/{execution_id}/actions/change-status")
async def change_status(execution_id: str, status: State, eng: EngineDep, who: ActorDep) -> dict[str, Any]:
    await run_in_threadpool(lambda: eng.change_status(execution_id, status, actor=who))
    return await run_in_threadpool(execution_answer, eng, execution_id)


class LabelPublic(BaseModel):
    key: str
    value: str


@router.post("/executions/{execution_id}/labels")
async def set_labels_legacy(execution_id: str, request: Request, eng: EngineDep, who: ActorDep) -> dict[str, Any]:
    created = await _flow_named_like("labels", request, eng, who)
    if created is not None:
        return created
    labels = validated_body(list[LabelPublic], await request.body())
    return await set_labels(execution_id, labels, eng, who)


@router.post("/executions/{execution_id}/actions/labels")
async def set_labels(execution_id: str, labels: list[LabelPublic], eng: EngineDep, who: ActorDep) -> dict[str, Any]:
    """Add or override labels of an execution (Kestra allows it on ended executions); `system.*` is refused."""
    reserved = [label.key for label in labels if label.key.startswith("system.")]
    if reserved:
        raise InputInvalid("labels", f"labels {reserved} are reserved for the system")
    await run_in_threadpool(lambda: eng.set_labels(execution_id, [label.model_dump() for label in labels], actor=who))
    return await run_in_threadpool(execution_answer, eng, execution_id)


# ---- concurrency queue: unqueue and force-run ---------------------------------------------------------------
# Kestra refuses an execution in the wrong state with an IllegalArgumentException, answered 422.


def _as_invalid(action: Callable[[str], object], execution_id: str) -> None:
    try:
        action(execution_id)
    except Conflict as e:
        raise QueryInvalid("executionId", e.message) from e


@router.post("/executions/{execution_id}/actions/unqueue", response_model=_EXECUTION)
@router.post("/executions/{execution_id}/unqueue", response_model=_EXECUTION, name="unqueue_legacy")
async def unqueue(execution_id: str, request: Request, eng: EngineDep, who: ActorDep) -> dict[str, Any]:
    """Start a QUEUED execution now, past its flow's concurrency limit."""
    created = await _flow_named_like("unqueue", request, eng, who)
    if created is not None:
        return created
    await run_in_threadpool(_as_invalid, lambda i: eng.unqueue(i, actor=who), execution_id)
    return await run_in_threadpool(execution_answer, eng, execution_id)


@router.post("/executions/{execution_id}/actions/force-run", response_model=_EXECUTION)
@router.post("/executions/{execution_id}/force-run", response_model=_EXECUTION, name="force_run_legacy")
async def force_run(execution_id: str, request: Request, eng: EngineDep, who: ActorDep) -> dict[str, Any]:
    """CREATED starts now, QUEUED is unqueued, PAUSED resumed; an ended execution is refused (422)."""
    created = await _flow_named_like("force-run", request, eng, who)
    if created is not None:
        return created
    await run_in_threadpool(_as_invalid, lambda i: eng.force_run(i, actor=who), execution_id)
    return await run_in_threadpool(execution_answer, eng, execution_id)


# The bulk forms (`/executions/{action}/by-ids` and `/by-query`) are in api/routes/bulk_actions.py.
