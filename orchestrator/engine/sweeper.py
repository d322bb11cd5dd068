"""The sweeper: the controller loop that re-dispatches due retries and stalled executions (one replica at a time).

Each sweep wakes due sleeps and pauses, enforces SLAs, starts scheduled executions, redelivers pending
events and notifications (and, once a minute, deletes notifications ended past their retention), then
re-sends every execution with a due retry or no progress for `stale_after_s`, so a lost message never
strands an execution. A Postgres advisory lock lets only one replica sweep at a time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from datetime import timedelta

import redis

from orchestrator import store
from orchestrator.engine import events, notification_outbox, operations, submission
from orchestrator.engine.facade import Engine
from orchestrator.observability.metrics import Metrics
from orchestrator.store.locks import SWEEPER_LOCK_KEY

logger = logging.getLogger(__name__)

#: How often the outbox's ended rows are purged: the retention is days, so once a minute is prompt enough and
#: keeps the purge's scan off most sweeps.
OUTBOX_PURGE_EVERY_S = 60.0


class Sweeper:
    """Sweeps every `sweep_interval_s` in a background thread (`start`/`stop`), or once (`sweep_once`)."""

    def __init__(self, engine: Engine, metrics: Metrics | None = None) -> None:
        self._engine = engine
        self._metrics = metrics
        self._broker: redis.Redis | None = None  # the view of queue lengths, opened on first use
        self._stop = threading.Event()
        self.outbox = notification_outbox.Redelivery(engine)  #: notifications left unsent, sent off the loop
        self._next_outbox_purge = 0.0  # time.monotonic() of the next purge: the first sweep purges
        self._thread = threading.Thread(target=self._loop, name="chorus-sweeper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.outbox.join(timeout_s=5)

    def sweep_once(self, *, include_stale: bool = True) -> int:
        """Re-dispatch executions with due retries or no progress; only one sweeper runs at a time.

        `include_stale=False` skips the no-progress check: right after a database outage every heartbeat
        looks stale, and live workers need one staleness window to heartbeat again before a take-over.
        """
        engine = self._engine
        with engine.transaction() as session:
            if not store.try_advisory_lock(session, SWEEPER_LOCK_KEY):
                return 0
            # Due times were set by the database's clock (`store.transaction_now`): judge them by it too, not by
            # this host's wall clock, which may be seconds off the workers' and the database's.
            now = store.db_now(session)
            due = list(store.executions_with_due_retries(session, now))
            stale: Sequence[str] = []
            if include_stale:
                stale_after = engine.settings.stale_after_s
                if self._queued_messages() > 0:
                    stale_after *= engine.settings.stale_backlog_factor
                older_than = now - timedelta(seconds=stale_after)
                stale = store.stale_running_executions(session, older_than)
        operations.wake_due(engine, now)
        operations.enforce_slas(engine, now)
        submission.start_scheduled(engine, now)
        events.redeliver_pending(engine)
        self.outbox.kick()
        self._purge_outbox()
        ids = list(dict.fromkeys([*due, *stale]))
        for execution_id in ids:
            try:
                engine.dispatch(execution_id, actor="system:sweeper")
            except Exception:
                logger.exception("sweeper could not dispatch %s", execution_id, extra={"execution_id": execution_id})
        return len(ids)

    def _purge_outbox(self) -> None:
        if time.monotonic() < self._next_outbox_purge:
            return
        self._next_outbox_purge = time.monotonic() + OUTBOX_PURGE_EVERY_S
        try:
            notification_outbox.purge_ended(self._engine)
        except Exception:  # housekeeping: never keep this sweep from re-dispatching what is due
            logger.exception("purging the notification outbox failed; the next purge tries again")

    def _loop(self) -> None:
        settings = self._engine.settings
        interval_s = settings.sweep_interval_s
        due = time.monotonic() + interval_s
        # Heartbeats cannot be written while the database is away (or before this process could see them):
        # judge staleness only once workers had a full staleness window of database access to heartbeat.
        reachable_since = time.monotonic()
        while not self._stop.wait(max(due - time.monotonic(), 0)):
            if self._metrics:
                self._metrics.sweeper_lag.set(max(time.monotonic() - due, 0))
            settled = time.monotonic() - reachable_since >= settings.stale_after_s
            try:
                recovered = self.sweep_once(include_stale=settled)
            except Exception:
                reachable_since = time.monotonic()
                if self._metrics:
                    self._metrics.sweeper_runs.labels("error").inc()
                logger.exception("sweep failed; retrying at the next interval")
            else:
                if self._metrics:
                    self._metrics.sweeper_runs.labels("ok").inc()
                    self._metrics.sweeper_recovered.inc(recovered)
                    self._metrics.sweeper_last_run.set_to_current_time()
            due = time.monotonic() + interval_s

    def _queued_messages(self) -> int:
        """Messages waiting in the pools' queues (Redis brokers), or 0 when they cannot be counted.

        The sweeper re-sends executions that made no progress for `stale_after_s`, to recover lost messages.
        Under a backlog, an execution whose message is merely waiting its turn looks the same; re-sending it
        would add to the very queue that delays it (measured: 1,000 executions became 6,499 messages).
        """
        settings = self._engine.settings
        if not settings.broker_url.startswith(("redis://", "rediss://", "unix://")):
            return 0
        try:
            if self._broker is None:
                self._broker = redis.Redis.from_url(settings.broker_url, socket_timeout=1, socket_connect_timeout=1)
            pipe = self._broker.pipeline(transaction=False)
            for pool in settings.pools:
                pipe.llen(pool)
            return int(sum(pipe.execute()))
        except redis.RedisError:
            return 0  # a broker that does not answer holds no backlog worth waiting for
