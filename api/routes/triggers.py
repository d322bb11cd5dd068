"""Triggers: search with last and next fire, enable/disable, unlock, and backfills, in Kestra's `/triggers` shape.

Each item is `{"abstractTrigger": ..., "triggerContext": ...}` as Kestra answers; the context carries
`date` (last fire), `nextExecutionDate`, `disabled` and the `backfill` in progress, if any.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Self

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel
from starlette.concurrency import run_in_threadpool

from api.bounds import PAGE, SIZE
from api.deps import ActorDep, EngineDep, PrincipalDep, authenticate, note
from api.permissions import Permission, allowed, guard
from orchestrator import store
from orchestrator.core.errors import NotFound
from orchestrator.engine import Engine
from orchestrator.engine.accounts import Principal
from orchestrator.store.tables import TriggerRow
from orchestrator.triggers import control as trigger_control

router = APIRouter(tags=["Triggers"], dependencies=[Depends(authenticate)])

#: Namespace, flow and trigger ids in a body: bounded, and without NUL (PostgreSQL refuses it in text).
Name = Annotated[str, Field(min_length=1, max_length=256, pattern=r"^[^\x00]*$")]


class BackfillCreate(BaseModel):
    """A backfill request: every slot of [start, end] becomes one execution."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    start: datetime
    end: datetime
    inputs: dict[str, Any] = Field(default_factory=dict)
    labels: list[dict[str, str]] | dict[str, str] = Field(default_factory=list)
    paused: bool = False

    @model_validator(mode="after")
    def _no_nul(self) -> Self:
        if "\\u0000" in json.dumps([self.inputs, self.labels]):
            raise ValueError("inputs and labels must not contain NUL characters")
        return self


class TriggerUpdate(BaseModel):
    """Kestra's `PUT /triggers` body: a trigger context whose `disabled` or `backfill` changes."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    namespace: Name
    flow_id: Name
    trigger_id: Name
    disabled: bool | None = None
    backfill: BackfillCreate | None = None


class TriggerRef(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    namespace: Name
    flow_id: Name
    trigger_id: Name


def trigger_public(row: TriggerRow) -> dict[str, Any]:
    """One trigger in Kestra's shape."""
    context: dict[str, Any] = {
        "tenantId": row.tenant,
        "namespace": row.namespace,
        "flowId": row.flow_id,
        "triggerId": row.trigger_id,
        "date": store.iso(row.last_fire_at) if row.last_fire_at else None,
        "nextExecutionDate": store.iso(row.next_fire_at) if row.next_fire_at else None,
        "disabled": not row.enabled,
        "executionId": row.last_execution_id,
        "updatedDate": store.iso(row.updated_at),
    }
    backfill = row.state.get("backfill")
    if backfill:
        context["backfill"] = {
            "start": backfill["start"],
            "end": backfill["end"],
            "currentDate": backfill["next"],
            "paused": backfill.get("paused", False),
            "inputs": backfill.get("inputs", {}),
            "labels": backfill.get("labels", []),
        }
    return {"abstractTrigger": {"id": row.trigger_id, "type": row.state.get("type")}, "triggerContext": context}


@router.get("/triggers/search")
async def search_triggers(
    principal: PrincipalDep,
    eng: EngineDep,
    page: int = PAGE,
    size: int = SIZE,
    namespace: str | None = None,
    flowId: str | None = None,
) -> dict[str, Any]:
    """Schedule triggers visible to the caller, with their last and next fire."""
    rows = await run_in_threadpool(trigger_control.list_triggers, eng)
    visible = [
        r
        for r in rows
        if allowed(principal, Permission.FLOW_READ, r.namespace)
        and (not namespace or r.namespace == namespace or r.namespace.startswith(namespace.rstrip(".") + "."))
        and (not flowId or r.flow_id == flowId)
    ]
    window = visible[(page - 1) * size : page * size]
    return {"results": [trigger_public(r) for r in window], "total": len(visible)}


@router.get("/triggers/{namespace}/{flow_id}")
async def flow_triggers(
    request: Request,
    namespace: str,
    flow_id: str,
    principal: PrincipalDep,
    eng: EngineDep,
) -> dict[str, Any]:
    """The triggers of one flow."""
    guard(request, principal, Permission.FLOW_READ, "flow", namespace, f"{namespace}.{flow_id}")
    rows = await run_in_threadpool(trigger_control.list_triggers, eng, namespace)
    results = [trigger_public(r) for r in rows if r.flow_id == flow_id and r.namespace == namespace]
    return {"results": results, "total": len(results)}


@router.put("/triggers")
async def update_trigger(
    request: Request,
    body: TriggerUpdate,
    principal: PrincipalDep,
    eng: EngineDep,
    who: ActorDep,
) -> dict[str, Any]:
    """Enable or disable a trigger (`disabled`), or start a backfill (`backfill`)."""
    key = (body.namespace, body.flow_id, body.trigger_id)
    entry = note(request, "trigger.update", namespace=body.namespace, flow_id=body.flow_id, subject=".".join(key))
    guard(request, principal, Permission.FLOW_WRITE, "flow", body.namespace, f"{body.namespace}.{body.flow_id}")
    row: TriggerRow | None = None
    if body.disabled is not None:
        row = await run_in_threadpool(trigger_control.set_enabled, eng, key, not body.disabled, actor=who)
    if body.backfill is not None:
        row = await run_in_threadpool(_start_backfill, eng, key, body.backfill, who)
    if row is None:
        rows = await run_in_threadpool(trigger_control.list_triggers, eng, body.namespace)
        row = next((r for r in rows if (r.namespace, r.flow_id, r.trigger_id) == key), None)
    entry.audited = True
    if row is None:
        raise NotFound("trigger", ".".join(key))
    return trigger_public(row)


def _start_backfill(eng: Engine, key: tuple[str, str, str], backfill: BackfillCreate, who: str) -> TriggerRow:
    labels = backfill.labels
    if isinstance(labels, dict):
        labels = [{"key": k, "value": v} for k, v in labels.items()]
    row = trigger_control.start_backfill(
        eng, key, backfill.start, backfill.end, inputs=backfill.inputs, labels=labels, actor=who
    )
    if backfill.paused:
        row = trigger_control.pause_backfill(eng, key, True, actor=who)
    return row


@router.post("/triggers/{namespace}/{flow_id}/{trigger_id}/unlock")
async def unlock_trigger(
    request: Request,
    namespace: str,
    flow_id: str,
    trigger_id: str,
    principal: PrincipalDep,
    eng: EngineDep,
    who: ActorDep,
) -> dict[str, Any]:
    """Reschedule a stuck trigger at its next slot."""
    entry = note(request, "trigger.unlock", namespace=namespace, flow_id=flow_id, subject=trigger_id)
    guard(request, principal, Permission.FLOW_WRITE, "flow", namespace, f"{namespace}.{flow_id}")
    row = await run_in_threadpool(trigger_control.unlock, eng, (namespace, flow_id, trigger_id), actor=who)
    entry.audited = True
    return trigger_public(row)


async def _backfill_action(
    request: Request, body: TriggerRef, principal: Principal, eng: Engine, who: str, what: str
) -> dict[str, Any]:
    key = (body.namespace, body.flow_id, body.trigger_id)
    entry = note(request, f"trigger.backfill_{what}", namespace=body.namespace, flow_id=body.flow_id)
    guard(request, principal, Permission.EXECUTION_RUN, "flow", body.namespace, f"{body.namespace}.{body.flow_id}")
    if what == "delete":
        row = await run_in_threadpool(trigger_control.cancel_backfill, eng, key, actor=who)
    else:
        row = await run_in_threadpool(trigger_control.pause_backfill, eng, key, what == "pause", actor=who)
    entry.audited = True
    return trigger_public(row)


@router.put("/triggers/backfill/pause")
async def pause_backfill(
    request: Request,
    body: TriggerRef,
    principal: PrincipalDep,
    eng: EngineDep,
    who: ActorDep,
) -> dict[str, Any]:
    """Pause a trigger's backfill: no more slots fire until it is unpaused."""
    return await _backfill_action(request, body, principal, eng, who, "pause")


@router.put("/triggers/backfill/unpause")
async def unpause_backfill(
    request: Request,
    body: TriggerRef,
    principal: PrincipalDep,
    eng: EngineDep,
    who: ActorDep,
) -> dict[str, Any]:
    """Resume a paused backfill where it stopped."""
    return await _backfill_action(request, body, principal, eng, who, "unpause")


@router.post("/triggers/backfill/delete")
async def delete_backfill(
    request: Request,
    body: TriggerRef,
    principal: PrincipalDep,
    eng: EngineDep,
    who: ActorDep,
) -> dict[str, Any]:
    """Cancel a backfill; the executions it already created keep running."""
    return await _backfill_action(request, body, principal, eng, who, "delete")
