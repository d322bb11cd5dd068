"""Webhook triggers: `/executions/webhook/{namespace}/{flowId}/{key}` starts the flow (no login, as Kestra).

The request body (JSON when it parses, else the raw text), the headers and the query string become
`trigger.body`, `trigger.headers` and `trigger.parameters`. A wrong key, an unknown flow or a flow
without that webhook all answer 404 alike.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from api.deps import EngineDep, SubmitGroupsDep
from api.errors import QueryInvalid
from api.waiting import wait_for_execution
from orchestrator.core import json_text
from orchestrator.core.json_text import JsonTooDeep
from orchestrator.core.states import State

router = APIRouter(tags=["Webhooks"])


def _body(raw: bytes) -> Any:
    if not raw:
        return None
    text = raw.decode("utf-8", "replace")
    try:
        return json_text.loads(text)
    except JsonTooDeep as e:  # `[[[[...` thousands deep is JSON, just not readable: the caller is told so
        raise QueryInvalid("body", str(e)) from e
    except ValueError:
        return text


def _multi(items: list[tuple[str, str]]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for key, value in items:
        grouped.setdefault(key, []).append(value)
    return grouped


@router.api_route(
    "/executions/webhook/{namespace}/{flow_id}/{key}", methods=["GET", "POST", "PUT"], response_model=None
)
async def webhook(
    namespace: str,
    flow_id: str,
    key: str,
    request: Request,
    eng: EngineDep,
    groups: SubmitGroupsDep,
) -> dict[str, Any] | Response:
    variables = {
        "body": _body(await request.body()),
        "headers": _multi(list(request.headers.items())),
        "parameters": _multi(list(request.query_params.multi_items())),
    }
    client = request.client.host if request.client else "unknown"
    start, trigger = await run_in_threadpool(
        lambda: eng.webhook_request(namespace, flow_id, key, variables, actor=f"trigger:webhook@{client}")
    )
    if start is None:
        return Response(status_code=204)  # Kestra's Webhook: conditions not met, no execution
    execution = await groups.submit(start)  # written with the other starts of the moment, one commit
    if trigger.get("wait") or trigger.get("returnOutputs"):
        ended = await wait_for_execution(eng, execution.id, lambda row: State(row.state).is_terminal)
        execution = ended or execution
        if trigger.get("returnOutputs"):
            return JSONResponse(execution.outputs or {}, status_code=int(trigger.get("responseCode") or 200))
    body = {
        "tenantId": execution.tenant,
        "id": execution.id,
        "namespace": execution.namespace,
        "flowId": execution.flow_id,
        "flowRevision": execution.flow_revision,
        "trigger": execution.trigger,
        "outputs": execution.outputs,
        "labels": execution.labels,
        "state": {"current": execution.state, "histories": execution.state_history},
        "url": f"{request.base_url}ui/main/executions/{namespace}/{flow_id}/{execution.id}",
    }
    failed = trigger.get("wait") and State(execution.state).is_failure
    return JSONResponse(body, status_code=500 if failed else 200)
