"""Re-apply a Celery task by id: what `chorus retry` and an operator's Flower re-apply do.

Chorus's Celery messages carry only keyword coordinates (execution id, task id, parent task run id,
iteration, attempt; a `run_inline` message a list of them), and `result_extended` keeps each task's name,
kwargs and queue in the result backend, so a re-apply sends exactly the original coordinates again, to the
original queue. Whether that starts a new attempt is the engine's decision when a worker claims the task run.
Results are kept CHORUS_RESULT_EXPIRES_S, and a chain link other than the last stores none (its verdict
travels in the next message): such a message is re-applied from Flower's task page, whose events carry it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from celery import Celery

from orchestrator.celery_app import CONTROL_QUEUE, ENTER_TASK_RUN, JOIN_TASK_RUN, RUN_INLINE, RUN_TASK_RUN
from orchestrator.core.errors import Conflict, NotFound

#: Message header naming who asked for a re-apply (the audit trail's actor); a worker reads it from
#: `task.request.chorus_actor`.
ACTOR_HEADER = "chorus_actor"
REAPPLICABLE = frozenset({RUN_TASK_RUN, ENTER_TASK_RUN, JOIN_TASK_RUN, RUN_INLINE})


@dataclass(frozen=True)
class Reapplied:
    """A re-applied Celery task: the original id, the new message's id, and what was sent where."""

    original_id: str
    new_id: str
    name: str
    queue: str
    kwargs: dict[str, Any]
    original_state: str


def reapply(app: Celery, celery_task_id: str, *, actor: str) -> Reapplied:
    """Send the Celery task `celery_task_id` again with its original keyword arguments, to its queue."""
    meta = app.backend.get_task_meta(celery_task_id)
    name = meta.get("name")
    if not name:
        # The backend answers PENDING with no name for ids it never stored (or that expired).
        raise NotFound("celery task", celery_task_id)
    if name not in REAPPLICABLE:
        raise Conflict(f"celery task {celery_task_id} is a {name}, not a Chorus task run: it cannot be retried")
    kwargs = dict(meta.get("kwargs") or {})
    queue = meta.get("queue") or CONTROL_QUEUE
    # The positional argument is only the previous chain link's verdict: a re-apply stands alone.
    result = app.send_task(name, args=(), kwargs=kwargs, queue=queue, headers={ACTOR_HEADER: actor})
    return Reapplied(celery_task_id, result.id, name, queue, kwargs, str(meta.get("status")))
