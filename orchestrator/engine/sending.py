"""Sending a plan to the pools once its transaction committed: best effort, since Redis only dispatches.

The state is in PostgreSQL already; a message that cannot be sent (the broker unreachable, a network
partition) is re-sent by the sweeper once the execution has made no progress for `stale_after_s`. Failing the
caller instead would answer an error for an execution that exists (the API's client would submit it again).
"""

from __future__ import annotations

import logging

import kombu.exceptions
import redis
from celery import Celery

from orchestrator.core.plan import PlanNode
from orchestrator.engine.compiler import to_canvas

logger = logging.getLogger(__name__)

#: What a send raises when Redis cannot be reached (refused, reset, or timed out by the broker's socket timeouts).
BROKER_UNAVAILABLE: tuple[type[Exception], ...] = (kombu.exceptions.OperationalError, redis.RedisError, OSError)


def send_plan(celery: Celery, plan: PlanNode, execution_id: str) -> bool:
    """Send `plan`'s canvas; False (logged) when the broker could not take it: the sweeper will."""
    try:
        to_canvas(celery, plan).apply_async()
    except BROKER_UNAVAILABLE as e:
        logger.warning(
            "could not send the next task runs of %s (%s); the sweeper re-sends them once stale",
            execution_id,
            e,
            extra={"execution_id": execution_id, "action": "send_failed"},
        )
        return False
    return True
