"""Which handler runs which task type; pools add their handlers here as they grow."""

from __future__ import annotations

from orchestrator.core.errors import TaskFailed
from workers import control
from workers.context import Decider, Handler

_HANDLERS: dict[str, Handler] = {**control.HANDLERS}
_DECIDERS: dict[str, Decider] = {**control.DECIDERS}


def handler_for(task_type: str) -> Handler:
    try:
        return _HANDLERS[task_type]
    except KeyError:
        raise TaskFailed(f"task type {task_type} is not implemented by this worker yet", retryable=False) from None


def decider_for(task_type: str) -> Decider:
    try:
        return _DECIDERS[task_type]
    except KeyError:
        raise TaskFailed(f"flowable type {task_type} is not implemented by this worker yet", retryable=False) from None
