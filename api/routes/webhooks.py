"""Webhook triggers: `/executions/webhook/{namespace}/{flowId}/{key}` starts the flow (no login, as Kestra).

The request body (JSON when it parses, else the raw text), the headers and the query string become
`trigger.body`, `trigger.headers` and `trigger.parameters`. A wrong key, an unknown flow or a flow
without that webhook all answer 404 alike.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from api.deps import EngineDep, SubmitGroupsDep, note
from api.errors import QueryInvalid
from api.waiting import wait_for_execution
from orchestrator.core import json_text
from orchestrator.core.errors import WebhookDeclined
from orchestrator.core.json_text import JsonTooDeep
from orchestrator.core.states import State
from orchestrator.engine import SubmitRequest, WebhookCall

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
    # No namespace or flow on the note: a failed call (a wrong key, a guessed flow) is recorded on the tenant's
    # API chain as before, never on a chain named by what an anonymous caller typed.
    entry = note(request, "execution.webhook", subject=f"{namespace}.{flow_id}")
    variables = {
        "body": _body(await request.body()),
        "headers": _multi(list(request.headers.items())),
        "parameters": _multi(list(request.query_params.multi_items())),
    }
    client = request.client.host if request.client else "unknown"
    # The trigger, its key and conditions are resolved in the group's transaction, against the revision it reads
    # anyway: one hop to the thread pool and one transaction per fire, as for an API create.
    call = WebhookCall(key, variables)
    start = SubmitRequest(namespace, flow_id, {}, f"trigger:webhook@{client}", webhook=call)
    try:
        execution = await groups.submit(start)  # written with the other starts of the moment, one commit
    except WebhookDeclined:
        entry.read_only = True  # nothing started, nothing written: recorded only if denied, as a read
        return Response(status_code=204)  # Kestra's Webhook: conditions not met, no execution
    # The execution's own `execution.created` event (actor trigger:webhook@client) is this call's record: no
    # second audit write in a transaction of its own (on the API's one `api:` chain, a lock every fire waited on).
    entry.audited, entry.subject = True, execution.id
    trigger = eng.webhook_properties(execution)  # the revision the start parsed here: no query
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
