"""Builds the Celery app from Settings: one queue per pool, acks_late, ids-only JSON messages; no task bodies."""

from __future__ import annotations

from celery import Celery
from kombu import Queue

from orchestrator.settings import Settings

#: Celery task names. Messages carry only coordinates (execution id, task id, parent task run id,
#: iteration, attempt): Flower shows them in full and a re-apply of the same arguments resumes work.
RUN_TASK_RUN = "chorus.run_task_run"
ENTER_TASK_RUN = "chorus.enter_task_run"
JOIN_TASK_RUN = "chorus.join_task_run"
#: Consecutive inline task runs (and their parent's join) claimed, run and recorded in one transaction.
RUN_INLINE = "chorus.run_inline"
CONTROL_QUEUE = "control"


def create_celery_app(settings: Settings, *, main: str = "chorus") -> Celery:
    """A configured Celery app; creating it opens no connection."""
    app = Celery(main, broker=settings.broker_url, backend=settings.effective_result_backend)
    transport_options = {"visibility_timeout": settings.visibility_timeout_s}
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_queues=[Queue(pool, routing_key=pool) for pool in settings.pools],
        task_default_queue=CONTROL_QUEUE,
        task_create_missing_queues=True,
        # A worker death re-queues its message; the claim in Postgres makes the redelivery safe.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_transport_options=transport_options,
        result_backend_transport_options=transport_options,
        result_expires=7 * 24 * 3600,  # chord counters must outlive the longest fan-out
        result_extended=True,
        worker_send_task_events=True,
        task_send_sent_event=True,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        enable_utc=True,
    )
    return app
