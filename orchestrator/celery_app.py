"""Builds the Celery app from Settings: one queue per pool, acks_late, ids-only JSON messages; no task bodies."""

from __future__ import annotations

import time
from typing import Any

from celery import Celery
from celery.signals import before_task_publish
from kombu.entity import Queue

from orchestrator.celery_results import result_backend_url
from orchestrator.settings import Settings

#: Celery task names. Messages carry only coordinates (execution id, task id, parent task run id,
#: iteration, attempt): Flower shows them in full and a re-apply of the same arguments resumes work.
RUN_TASK_RUN = "chorus.run_task_run"
ENTER_TASK_RUN = "chorus.enter_task_run"
JOIN_TASK_RUN = "chorus.join_task_run"
#: Consecutive inline task runs (and their parent's join) claimed, run and recorded in one transaction; or
#: up to CHORUS_FANOUT_CHUNK one-task branches of a fan-out, `independent` (a failure stops no sibling).
RUN_INLINE = "chorus.run_inline"
CONTROL_QUEUE = "control"
#: Socket timeouts of every Redis connection (broker and result backend), in seconds: a Redis the network no longer
#: reaches (packets dropped, nothing refused) fails a command within these instead of the kernel's ~15 minutes of
#: TCP retransmissions (or, for the result backend, Celery's 120 s read and unbounded connect defaults).
REDIS_SOCKET_TIMEOUT_S = 10.0
REDIS_CONNECT_TIMEOUT_S = 5.0
#: Message header with the send time (epoch seconds): Celery's own headers carry none, and the age of the
#: oldest waiting message per pool (`queue_depth`) is read from it.
SENT_AT_HEADER = "chorus_sent_at"
#: Message header on every message the planner sends (the compiler sets it on each signature; Celery carries a
#: signature's headers to the chain links and chord bodies workers send). Such a message never restarts a
#: failed task run: a duplicate the sweeper sent while the attempt still ran may arrive after it failed, and
#: must be passed over, not taken for a person re-applying the message (which carries no such header).
PLANNED_HEADER = "chorus_planned"
#: Message header naming who asked for a re-apply (the audit trail's actor): `chorus retry` sets it.
ACTOR_HEADER = "chorus_actor"


def _stamp_sent_at(headers: dict[str, Any] | None = None, **_: Any) -> None:
    if headers is not None:
        headers.setdefault(SENT_AT_HEADER, time.time())


def create_celery_app(settings: Settings, *, main: str = "chorus") -> Celery:
    """A configured Celery app; creating it opens no connection."""
    # A process-wide signal: connected once however many apps a process (or a test session) builds.
    before_task_publish.connect(_stamp_sent_at, weak=False, dispatch_uid="chorus-sent-at")
    # Sending subscribes to no result (orchestrator/celery_results.py): nothing in Chorus waits on one.
    app = Celery(main, broker=settings.broker_url, backend=result_backend_url(settings.effective_result_backend))
    # Socket timeouts (REDIS_*): the engine's sends are best effort (engine/sending.py), so a send fails within
    # seconds and the sweeper sends again later. A worker's BRPOP waits 1 s at a time, well within them.
    transport_options = {
        "visibility_timeout": settings.visibility_timeout_s,
        "socket_timeout": REDIS_SOCKET_TIMEOUT_S,
        "socket_connect_timeout": REDIS_CONNECT_TIMEOUT_S,
        "socket_keepalive": True,
    }
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_queues=[Queue(pool, routing_key=pool) for pool in settings.pools],  # type: ignore[no-untyped-call]
        task_default_queue=CONTROL_QUEUE,
        task_create_missing_queues=True,
        # A worker death re-queues its message; the claim in Postgres makes the redelivery safe.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_transport_options=transport_options,
        result_backend_transport_options=transport_options,
        # The Redis result backend reads its socket settings from these, not from its transport options. Its
        # retry policy (20 attempts a second apart) stays: it rides over a Redis restart; a partition now costs
        # each attempt at most these timeouts, not 120 s (read) or the kernel's SYN retries (connect, ~2 min).
        redis_socket_timeout=REDIS_SOCKET_TIMEOUT_S,
        redis_socket_connect_timeout=REDIS_CONNECT_TIMEOUT_S,
        redis_socket_keepalive=True,
        # Nothing in Chorus reads a result back (verdicts travel in the next message, states live in
        # Postgres): results stay only for Flower. Chord counters (`.j`/`.t` keys) keep their own, longer
        # lifetime: they must outlive the longest fan-out or its join never fires by message.
        result_expires=settings.result_expires_s,
        result_chord_expires=settings.chord_expires_s,
        result_extended=True,
        worker_send_task_events=True,
        task_send_sent_event=settings.task_sent_events,
        chorus_fanout_chunk=settings.fanout_chunk,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        enable_utc=True,
    )
    return app
