"""The Redis result backend as Chorus uses it: results are stored (chords count them, Flower shows them), never
awaited by whoever sent the task.

Celery's Redis backend subscribes the sending process to each task's result channel as it sends the task
(`on_task_call`), so that a later `AsyncResult.get()` misses nothing. Chorus never waits on a result: a verdict
travels in the next message and every state lives in PostgreSQL. The subscription only cost a Redis round trip per
send and a channel per task the sender never read, and with Redis unreachable it blocked every send of the process:
the subscribe reconnected up to 20 times under a process-wide lock, each attempt waiting out a 120 s socket timeout
(the probe of `tests/chaos/partitions.py` 'server host cut from Redis' hung over 90 s). A `.get()` still works:
it subscribes when called.
"""

from __future__ import annotations

from typing import Any

from celery.backends.redis import RedisBackend

#: The backend's import path, as Celery's `result_backend` URL prefix takes it (`path+redis://host/db`).
QUIET_REDIS_BACKEND = "orchestrator.celery_results:SenderQuietRedisBackend"


class SenderQuietRedisBackend(RedisBackend):  # type: ignore[misc]
    """Celery's Redis result backend, but sending a task subscribes to nothing."""

    def on_task_call(self, producer: Any, task_id: str) -> dict[str, Any]:
        return {}


def result_backend_url(url: str) -> str:
    """The `result_backend` setting for `url`: the quiet backend for a Redis URL, any other backend as given."""
    return f"{QUIET_REDIS_BACKEND}+{url}" if url.startswith(("redis://", "rediss://")) else url
