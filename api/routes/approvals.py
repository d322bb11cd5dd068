"""Approvals (a Chorus extension): what a paused execution waits for, and approve / reject with a reason.

`GET /executions/{id}/approvals` needs `execution.read`; `POST .../actions/approve` and
`.../actions/reject` need `execution.resume` (the approver role), unlike kill. The body is JSON
(`{"reason": ..., "taskRunId": ..., "inputs": {...}}`) or a multipart form (`approval.reason`,
`approval.taskRunId` and the `onResume` inputs as fields, files included).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from api.action_io import execution_answer, resume_inputs
from api.deps import ActorDep, EngineDep
from api.forms import is_multipart
from orchestrator.core.errors import InputInvalid
from orchestrator.engine import Engine, approvals

router = APIRouter(tags=["Executions"])


class DecisionCreate(BaseModel):
    """A person's decision on a paused execution."""

    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=4000)
    taskRunId: str | None = None  # one paused task run; none: every paused task run
    inputs: dict[str, Any] = Field(default_factory=dict)  #: the `onResume` values (approve)


async def _decision(request: Request, eng: Engine, execution_id: str) -> DecisionCreate:
    if is_multipart(request):
        fields = await resume_inputs(request, eng, execution_id)
        # Named apart from `onResume` ids (a Pause may well ask for its own `reason`).
        reason, task_run_id = fields.pop("approval.reason", None), fields.pop("approval.taskRunId", None)
        return DecisionCreate(
            reason=str(reason) if reason else None, taskRunId=str(task_run_id) if task_run_id else None, inputs=fields
        )
    raw = await request.body()
    if not raw.strip():
        return DecisionCreate()
    try:
        return DecisionCreate.model_validate_json(raw)
    except ValidationError as e:
        first = e.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "body"
        raise InputInvalid(field, first["msg"]) from e


async def _decide(request: Request, eng: Engine, execution_id: str, who: str, *, approve: bool) -> dict[str, Any]:
    decision = await _decision(request, eng, execution_id)
    await run_in_threadpool(
        lambda: approvals.decide(
            eng,
            execution_id,
            approve=approve,
            reason=decision.reason,
            inputs=decision.inputs,
            task_run_id=decision.taskRunId,
            actor=who,
        )
    )
    return await run_in_threadpool(execution_answer, eng, execution_id)


@router.post("/executions/{execution_id}/actions/approve")
async def approve(
    execution_id: str,
    request: Request,
    eng: EngineDep,
    who: ActorDep,
) -> dict[str, Any]:
    """Approve: the paused task runs (or the one named) continue, a Pause with its `onResume` values."""
    return await _decide(request, eng, execution_id, who, approve=True)


@router.post("/executions/{execution_id}/actions/reject")
async def reject(
    execution_id: str,
    request: Request,
    eng: EngineDep,
    who: ActorDep,
) -> dict[str, Any]:
    """Reject: a Pause fails with the reason (the execution fails), a gated tool call is refused to the agent."""
    return await _decide(request, eng, execution_id, who, approve=False)


@router.get("/executions/{execution_id}/approvals")
async def pending_approvals(
    execution_id: str,
    eng: EngineDep,
) -> dict[str, Any]:
    """The paused task runs and what each asks: rendered description, `onResume` inputs, proposed tool call."""
    paused = await run_in_threadpool(approvals.pending, eng, execution_id)
    return {
        "executionId": execution_id,
        "taskRuns": [
            {
                "taskRunId": p.task_run_id,
                "taskId": p.task_id,
                "value": p.value,
                "kind": p.kind,
                "description": p.description,
                "onResume": p.on_resume,
                "proposal": p.proposal,
            }
            for p in paused
        ],
    }
