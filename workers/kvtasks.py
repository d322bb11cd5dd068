"""KV tasks (Set, Get, Delete) on the namespace KV store; every write is audited with the task as actor."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from orchestrator.core.errors import ChorusError, TaskFailed
from orchestrator.core.kv_merge import merge_kv_value
from orchestrator.core.namespace_access import Use
from orchestrator.engine.audit_trail import ApiAction
from orchestrator.engine.kv import TypedValue, parse_ttl, typed_value
from workers.context import TaskContext


def _where(ctx: TaskContext, use: Use) -> tuple[str, str]:
    namespace = str(ctx.render(ctx.properties.get("namespace") or ctx.claimed.flow.namespace))
    key = str(ctx.render(ctx.properties["key"]))
    ctx.guard.require(namespace, use, f"{ctx.claimed.task.type_name} of '{key}'")
    return namespace, key


def audit_action(ctx: TaskContext, name: str, namespace: str, key: str) -> ApiAction:
    at = ctx.claimed.coordinates
    return ApiAction(
        actor=f"task:{at.execution_id}/{at.task_id}",
        client="worker",
        action=name,
        outcome="success",
        status=0,
        namespace=namespace,
        subject=f"{namespace}/kv/{key}",
        detail={"execution_id": at.execution_id, "task_run_id": at.task_run_id},
    )


def _typed(value: Any, kind: str | None) -> TypedValue:
    if kind and kind.upper() != "STRING" and isinstance(value, str):
        return typed_value(value)  # `kvType` asks to read the text as a typed literal
    if isinstance(value, str):
        return TypedValue("STRING", value)
    return typed_value(json.dumps(value))


def run_kv_set(ctx: TaskContext) -> dict[str, Any] | None:
    namespace, key = _where(ctx, Use.KV_WRITE)
    if ctx.properties.get("overwrite") is False:
        try:
            ctx.engine.kv.get(namespace, key)
        except ChorusError:
            pass
        else:
            raise TaskFailed(f"The key '{key}' already exists in the namespace '{namespace}'", retryable=False)
    ttl = ctx.render(ctx.properties.get("ttl"))
    ctx.engine.kv.put(
        namespace,
        key,
        # Kestra's Set renders the value typed: `{{ kv('n') + 1 }}` stores a number (Set.java#run, renderTyped)
        _typed(ctx.render_stored(ctx.properties.get("value"), "KV value", typed=True), ctx.properties.get("kvType")),
        ttl=parse_ttl(str(ttl)) if ttl else None,
        description=None,
        audit=audit_action(ctx, "kv.put", namespace, key),
    )
    return None


def run_kv_get(ctx: TaskContext) -> dict[str, Any] | None:
    namespace, key = _where(ctx, Use.KV_READ)
    try:
        return {"value": ctx.engine.kv.get(namespace, key).value.get("v")}
    except ChorusError as e:
        if ctx.properties.get("errorOnMissing"):
            raise TaskFailed(f"The key '{key}' does not exist in the namespace '{namespace}'.", retryable=False) from e
        return {"value": None}


def run_kv_delete(ctx: TaskContext) -> dict[str, Any] | None:
    namespace, key = _where(ctx, Use.KV_WRITE)
    deleted = ctx.engine.kv.delete(namespace, key, audit=audit_action(ctx, "kv.delete", namespace, key))
    if not deleted and ctx.properties.get("errorOnMissing"):
        raise TaskFailed(f"The key '{key}' does not exist in the namespace '{namespace}'.", retryable=False)
    return {"deleted": deleted}


def run_kv_put(ctx: TaskContext) -> dict[str, Any] | None:
    """Kestra 2's kv.Put: the given value merged into the stored one (`merge_kv_value`); the key keeps its
    description and expiry; with `errorOnMissing`, an absent key fails the task before anything is written."""
    namespace, key = _where(ctx, Use.KV_WRITE)
    value = ctx.render_stored(ctx.properties.get("value"), "KV value", typed=True)
    try:
        row = ctx.engine.kv.get(namespace, key)
        found, stored, description, expires_at = True, row.value.get("v"), row.description, row.expires_at
    except ChorusError:  # absent or expired: Kestra's findMetadataAndValue finds nothing either
        found, stored, description, expires_at = False, None, None, None
    if not found and ctx.render(ctx.properties.get("errorOnMissing")) in (True, "true"):
        raise TaskFailed(
            f"No value found for key '{key}' in namespace '{namespace}' and `errorOnMissing` is set to true",
            retryable=False,
        )
    ctx.engine.kv.put(
        namespace,
        key,
        _typed(merge_kv_value(stored, value), None),
        ttl=max(expires_at - datetime.now(UTC), timedelta(seconds=1)) if expires_at is not None else None,
        description=description,
        audit=audit_action(ctx, "kv.put", namespace, key),
    )
    return None


HANDLERS = {"KVSet": run_kv_set, "KVGet": run_kv_get, "KVDelete": run_kv_delete, "KVPut": run_kv_put}
