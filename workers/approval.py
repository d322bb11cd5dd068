"""The decision of Kestra 2's Approval task when it starts: approve at once, run `onWait`, or pause."""

from __future__ import annotations

from typing import Any

from orchestrator.core.approval import DecisionType, branch_of, rendered_settings
from orchestrator.core.decision import TaskRunDecision
from orchestrator.core.expressions import is_true
from workers.context import Decider, Decision, TaskContext


def execution_url(ctx: TaskContext) -> str:
    """Kestra's `url` output: the execution's page (relative: Chorus knows no public address of its own)."""
    flow, at = ctx.claimed.flow, ctx.claimed.coordinates
    return f"/ui/main/executions/{flow.namespace}/{flow.id}/{at.execution_id}"


def decide_approval(ctx: TaskContext) -> Decision:
    """`autoApprove` runs `onApprove` straight away (no pause, no `onWait`); otherwise `onWait` runs first
    and the engine pauses the task run once it ended (at once when there is no `onWait`)."""
    url = execution_url(ctx)
    settings = rendered_settings(ctx.properties, ctx.render)
    auto = ctx.properties.get("autoApprove")
    if auto is not None and is_true(ctx.render(auto)):
        approved = DecisionType.APPROVED
        return Decision(
            {"branch": branch_of(approved), "approval": str(approved), "settings": settings},
            {"decision": str(approved), "auto": True, "url": url},
        )
    choice: TaskRunDecision = {"branch": "onWait", "awaiting": True, "settings": settings}
    outputs: dict[str, Any] = {"auto": False, "url": url}
    if not ctx.claimed.task.branches.get("onWait"):
        # Nothing to run before the review: pause now, as Pause does.
        choice["pause"] = True
        timeout = ctx.claimed.task.timeout
        if timeout:
            due = (ctx.claimed.clock.now() + timeout).isoformat()  # expired by the database's clock
            choice.update({"due": due, "on_due": "expire"})
            outputs["due"] = due
    return Decision(choice, outputs)


DECIDERS: dict[str, Decider] = {"Approval": decide_approval}
