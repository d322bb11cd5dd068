"""Trigger tasks: Toggle enables, disables or flips a flow's trigger, through the engine."""

from __future__ import annotations

from typing import Any

from orchestrator.core.errors import NotFound, TaskFailed
from orchestrator.core.namespace_access import Use
from orchestrator.triggers import control as trigger_control
from workers.context import Handler, TaskContext


def run_toggle(ctx: TaskContext) -> dict[str, Any] | None:
    """Kestra's Toggle: `trigger` of `namespace`.`flowId` (this flow by default); `enabled` unset flips it."""
    flow = ctx.claimed.flow
    namespace = str(ctx.render(ctx.properties.get("namespace") or flow.namespace))
    flow_id = str(ctx.render(ctx.properties.get("flowId") or flow.id))
    trigger_id = str(ctx.render(ctx.properties["trigger"]))
    raw = ctx.render(ctx.properties.get("enabled"))
    enabled = None if raw is None else str(raw).lower() == "true"
    ctx.guard.require(namespace, Use.FLOW_WRITE, f"Toggle of {namespace}.{flow_id}")
    actor = f"task:{ctx.claimed.coordinates.execution_id}/{ctx.claimed.task.id}"
    try:
        trigger_control.set_enabled(ctx.engine, (namespace, flow_id, trigger_id), enabled, actor=actor)
    except NotFound as e:
        raise TaskFailed(f"no trigger {trigger_id} on flow {namespace}.{flow_id}", retryable=False) from e
    return None


HANDLERS: dict[str, Handler] = {"Toggle": run_toggle}
