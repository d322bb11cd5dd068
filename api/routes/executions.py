"""Executions: create (multipart inputs, labels, wait), get, search, logs and audit — Kestra's shapes."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from api.deps import actor, check_tenant, engine, read_session
from api.schemas import execution_public, log_public
from orchestrator import store
from orchestrator.core.audit import verify_chain
from orchestrator.core.errors import InputInvalid, NotFound
from orchestrator.core.states import State
from orchestrator.engine import Engine

router = APIRouter(tags=["Executions"])

_WAIT_POLL_S = 0.05


def _labels(raw: list[str]) -> list[dict[str, str]]:
    labels = []
    for item in raw:
        key, sep, value = item.partition(":")
        if not sep or not key:
            raise InputInvalid("labels", f"label '{item}' is not in the form key:value")
        if key.startswith("system.") and key != "system.correlationId":
            raise InputInvalid("labels", f"label '{key}' is reserved for the system")
        labels.append({"key": key, "value": value})
    return labels


def _execution_json(session: Session, execution_id: str) -> dict[str, Any]:
    row = store.get_execution(session, execution_id)
    if row is None:
        raise NotFound("execution", execution_id)
    return execution_public(row, store.task_runs_of(session, execution_id))


@router.post("/executions/{namespace}/{flow_id}")
async def create_execution(
    namespace: str,
    flow_id: str,
    request: Request,
    labels: list[str] = Query(default=[]),
    wait: bool = False,
    revision: int | None = None,
    tenant: str = Depends(check_tenant),
    eng: Engine = Depends(engine),
    who: str = Depends(actor),
) -> dict[str, Any]:
    inputs: dict[str, Any] = {}
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        form = await request.form()
        for key, value in form.multi_items():
            # FILE inputs are accepted by name; storing their content arrives with internal storage.
            inputs[key] = value.filename if isinstance(value, UploadFile) else value
    label_list = _labels(labels)
    row = await run_in_threadpool(
        lambda: eng.submit(namespace, flow_id, inputs=inputs, labels=label_list, actor=who, revision=revision)
    )
    if wait:
        deadline = time.monotonic() + eng.settings.wait_timeout_s
        while time.monotonic() < deadline:
            with eng.sessions() as session:
                current = store.get_execution(session, row.id)
                if current is not None and State(current.state).is_terminal:
                    break
            await _sleep(_WAIT_POLL_S)
    with eng.sessions() as session:
        body = _execution_json(session, row.id)
    body["url"] = f"{request.base_url}ui/executions/{row.id}"
    return body


async def _sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)


@router.get("/executions/search")
def search_executions(
    namespace: str | None = None,
    flowId: str | None = None,  # noqa: N803 - Kestra's query parameter name
    state: str | None = None,
    page: int = 1,
    size: int = 25,
    tenant: str = Depends(check_tenant),
    session: Session = Depends(read_session),
) -> dict[str, Any]:
    rows, total = store.search_executions(
        session, tenant, namespace=namespace, flow_id=flowId, state=state, offset=(page - 1) * size, limit=size
    )
    return {"results": [execution_public(r, store.task_runs_of(session, r.id)) for r in rows], "total": total}


@router.get("/executions/{execution_id}")
def get_execution(
    execution_id: str, tenant: str = Depends(check_tenant), session: Session = Depends(read_session)
) -> dict[str, Any]:
    return _execution_json(session, execution_id)


@router.get("/logs/{execution_id}")
def execution_logs(
    execution_id: str,
    minLevel: str | None = None,  # noqa: N803 - Kestra's query parameter name
    taskRunId: str | None = None,  # noqa: N803
    tenant: str = Depends(check_tenant),
    session: Session = Depends(read_session),
) -> list[dict[str, Any]]:
    order = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"]
    floor = order.index(minLevel) if minLevel in order else 0
    rows = store.log_lines_of(session, execution_id, task_run_id=taskRunId)
    return [log_public(r) for r in rows if (order.index(r.level) if r.level in order else 2) >= floor]


@router.get("/audit/executions/{execution_id}")
def execution_audit(
    execution_id: str, tenant: str = Depends(check_tenant), session: Session = Depends(read_session)
) -> dict[str, Any]:
    """Chorus's addition: the execution's audit chain and whether it verifies."""
    events = store.audit_events(session, execution_id)
    if not events:
        raise NotFound("execution", execution_id)
    broken = verify_chain(
        (
            e.seq,
            e.prev_hash,
            e.hash,
            store.hashed_event(e.chain_key, e.seq, e.at, e.actor, e.action, e.subject, e.payload),
        )
        for e in events
    )
    return {
        "verified": broken is None,
        "brokenAt": None if broken is None else {"seq": broken.seq, "reason": broken.reason},
        "events": [
            {
                "seq": e.seq,
                "at": store.iso(e.at),
                "actor": e.actor,
                "action": e.action,
                "subject": e.subject,
                "payload": e.payload,
                "prevHash": e.prev_hash,
                "hash": e.hash,
            }
            for e in events
        ],
    }
