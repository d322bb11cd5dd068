"""Kestra 2's review of an Approval task: `POST /executions/{id}/actions/review` approves or denies it, and
`POST /executions/{id}/actions/cancel-approval` ends the request without a decision.

As Kestra 2's ExecutionController#reviewExecution takes it: `?taskRunId=...&decision=APPROVE|DENY` and a
multipart body whose `comment` part is the reviewer's comment and every other part an input of the review
dialog. Chorus also takes the same fields in the body (JSON `{"decision", "comment", "taskRunId", "inputs"}`
or form fields); the query wins. Reviewing needs the same permission as resuming (the approver role);
answers the execution's JSON.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from api.action_io import execution_answer, resume_inputs
from api.deps import ActorDep, EngineDep
from api.forms import is_multipart
from orchestrator.core import json_text
from orchestrator.core.approval import parse_decision
from orchestrator.core.errors import InputInvalid
from orchestrator.engine import Engine, approval_tasks

router = APIRouter(tags=["Executions"])

_FIELDS = ("decision", "comment", "taskRunId")


async def _body(request: Request, eng: Engine, execution_id: str) -> dict[str, Any]:
    if is_multipart(request):
        form = await resume_inputs(request, eng, execution_id)
        return {
            **{k: form[k] for k in _FIELDS if k in form},
            "inputs": {k: v for k, v in form.items() if k not in _FIELDS},
        }
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json_text.loads(raw)
    except ValueError as e:  # JsonTooDeep too
        raise InputInvalid("body", "expected a JSON object or a multipart form") from e
    if not isinstance(body, dict):
        raise InputInvalid("body", "expected a JSON object")
    return body


@router.post("/executions/{execution_id}/actions/review")
async def review(
    execution_id: str,
    request: Request,
    eng: EngineDep,
    who: ActorDep,
    task_run_query: str | None = Query(None, alias="taskRunId", description="The Approval task run"),
    decision_query: str | None = Query(None, alias="decision", description="APPROVE or DENY"),
) -> dict[str, Any]:
    body = await _body(request, eng, execution_id)
    # Kestra 2 names the task run and the decision in the query string.
    query = {"decision": decision_query, "taskRunId": task_run_query}
    body.update({k: v for k, v in query.items() if v not in (None, "")})
    if body.get("decision") in (None, ""):
        raise InputInvalid("decision", "missing required field (APPROVED or DENIED)")
    decision = parse_decision(body["decision"])
    comment, task_run_id, inputs = body.get("comment"), body.get("taskRunId"), body.get("inputs") or {}
    if comment is not None and not isinstance(comment, str):
        raise InputInvalid("comment", "expected text")
    if task_run_id is not None and not isinstance(task_run_id, str):
        raise InputInvalid("taskRunId", "expected text")
    if not isinstance(inputs, dict):
        raise InputInvalid("inputs", "expected an object")
    await run_in_threadpool(approval_tasks.review, eng, execution_id, task_run_id, decision, comment, inputs, actor=who)
    return await run_in_threadpool(execution_answer, eng, execution_id)


@router.post("/executions/{execution_id}/actions/cancel-approval")
async def cancel_approval(
    execution_id: str,
    eng: EngineDep,
    who: ActorDep,
    task_run_id: str | None = Query(None, alias="taskRunId", description="The Approval task run"),
) -> dict[str, Any]:
    """Kestra 2's ExecutionController#cancelApproval: the paused Approval `taskRunId` ends CANCELLED, no branch
    runs, and the execution is cancelled."""
    await run_in_threadpool(approval_tasks.cancel, eng, execution_id, task_run_id, actor=who)
    return await run_in_threadpool(execution_answer, eng, execution_id)
