"""Re-apply a Celery task by id: what `chorus retry` and an operator's Flower re-apply do.

Chorus's Celery messages carry only keyword coordinates (execution id, task id, parent task run id,
iteration, attempt; a `run_inline` message a list of them), and `result_extended` keeps each task's name,
kwargs and queue in the result backend, so a re-apply sends exactly the original coordinates again, to the
original queue. Whether that starts a new attempt is the engine's decision when a worker claims the task run.
Results are kept CHORUS_RESULT_EXPIRES_S, and a chain link other than the last stores none (its verdict
travels in the next message): for such an id the message is rebuilt from the task run attempt that recorded
it as its `celeryTaskId` (engine/attempt_messages.py), as the planner would send that attempt again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from celery import Celery

from orchestrator.celery_app import (
    ACTOR_HEADER,
    CONTROL_QUEUE,
    ENTER_TASK_RUN,
    JOIN_TASK_RUN,
    RUN_INLINE,
    RUN_TASK_RUN,
)
from orchestrator.core.errors import Conflict, NotFound
from orchestrator.core.plan import Run
from orchestrator.engine.compiler import to_canvas

REAPPLICABLE = frozenset({RUN_TASK_RUN, ENTER_TASK_RUN, JOIN_TASK_RUN, RUN_INLINE})


#: Where a message was found: the result backend (`result_extended`), or rebuilt from a task run attempt.
FROM_RESULT = "result backend"
FROM_ATTEMPT = "task run attempt"


@dataclass(frozen=True)
class Message:
    """A Chorus message to send again: its Celery task name, queue and keyword coordinates."""

    name: str
    queue: str
    kwargs: dict[str, Any]
    original_state: str  #: Celery's status of the original, or "UNKNOWN" when the backend has no result
    source: str  #: FROM_RESULT or FROM_ATTEMPT


@dataclass(frozen=True)
class Reapplied:
    """A re-applied Celery task: the original id, the new message's id, and what was sent where."""

    original_id: str
    new_id: str
    name: str
    queue: str
    kwargs: dict[str, Any]
    original_state: str
    source: str


def locate(app: Celery, celery_task_id: str, run_of_celery_task: Callable[[str], Run | None]) -> Message:
    """The message `celery_task_id` was: from the result backend, else from the attempt that recorded the id
    (`run_of_celery_task`, the engine's read); NotFound when neither knows it."""
    meta = app.backend.get_task_meta(celery_task_id)
    name = meta.get("name")
    if not name:
        # The backend answers PENDING with no name for ids it never stored (a chain link) or that expired.
        return _from_attempt(app, celery_task_id, run_of_celery_task)
    if name not in REAPPLICABLE:
        raise Conflict(f"celery task {celery_task_id} is a {name}, not a Chorus task run: it cannot be retried")
    kwargs = dict(meta.get("kwargs") or {})
    queue = meta.get("queue") or CONTROL_QUEUE
    return Message(name, queue, kwargs, str(meta.get("status")), FROM_RESULT)


def _from_attempt(app: Celery, celery_task_id: str, run_of_celery_task: Callable[[str], Run | None]) -> Message:
    run = run_of_celery_task(celery_task_id)
    if run is None:
        # Task runs the controller ran in its own transaction (owner "local:...") record no Celery id either.
        raise NotFound(
            "celery task",
            celery_task_id,
            why="no Celery task and no task run attempt with this id (task runs the controller ran in its own "
            "transaction were sent no message)",
        )
    signature = to_canvas(app, run)
    return Message(signature.task, signature.options["queue"], dict(signature.kwargs), "UNKNOWN", FROM_ATTEMPT)


def send(app: Celery, celery_task_id: str, message: Message, *, actor: str) -> Reapplied:
    """Send `message` again, alone (no chain), with `actor` in its header for the audit trail."""
    # The positional argument is only the previous chain link's verdict: a re-apply stands alone.
    result = app.send_task(
        message.name, args=(), kwargs=message.kwargs, queue=message.queue, headers={ACTOR_HEADER: actor}
    )
    return Reapplied(
        celery_task_id,
        result.id,
        message.name,
        message.queue,
        message.kwargs,
        message.original_state,
        message.source,
    )
