"""Which handler runs which task type; pools add their handlers here as they grow."""

from __future__ import annotations

import functools
from typing import Any

from orchestrator.core.errors import ChorusError, TaskFailed
from workers import (
    ai,
    approval,
    control,
    exectasks,
    foreachitem,
    housekeeping,
    io,
    kvtasks,
    loop,
    mcp_tools,
    notifications,
    nsfiles,
    publish,
    scripts,
    statetasks,
    storagetasks,
    templating,
    triggers,
)
from workers.context import Decider, Handler, TaskContext

_HANDLERS: dict[str, Handler] = {
    **control.HANDLERS,
    **foreachitem.HANDLERS,
    **io.HANDLERS,
    **notifications.HANDLERS,
    **ai.HANDLERS,
    **mcp_tools.HANDLERS,
    **scripts.HANDLERS,
    **kvtasks.HANDLERS,
    **triggers.HANDLERS,
    **statetasks.HANDLERS,
    **storagetasks.HANDLERS,
    **nsfiles.HANDLERS,
    **templating.HANDLERS,
    **housekeeping.HANDLERS,
    **exectasks.HANDLERS,
    **publish.HANDLERS,
}
_DECIDERS: dict[str, Decider] = {**control.DECIDERS, **loop.DECIDERS, **approval.DECIDERS}


def _redacting(handler: Handler) -> Handler:
    """A handler whose failure message never shows a secret it read (the message reaches logs and audit)."""

    @functools.wraps(handler)
    def run(ctx: TaskContext) -> dict[str, Any] | None:
        try:
            return handler(ctx)
        except Exception as error:
            message = error.message if isinstance(error, ChorusError) else f"{type(error).__name__}: {error}"
            redacted = ctx.redact(message)
            if redacted == message:
                raise
            raise TaskFailed(redacted, retryable=error.retryable if isinstance(error, TaskFailed) else True) from error

    return run


def handler_for(task_type: str) -> Handler:
    try:
        return _redacting(_HANDLERS[task_type])
    except KeyError:
        raise TaskFailed(f"task type {task_type} is not implemented by this worker yet", retryable=False) from None


def decider_for(task_type: str) -> Decider:
    try:
        return _DECIDERS[task_type]
    except KeyError:
        raise TaskFailed(f"flowable type {task_type} is not implemented by this worker yet", retryable=False) from None
