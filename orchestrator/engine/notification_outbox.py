"""The notification outbox: a notification task's request recorded with its task run's success, then sent.

Why this way round. A notification sent by the task body and recorded afterwards is sent twice when the
worker dies in between (the task run is re-run and sends again). Here the task body only renders the
request; `record` writes it in the transaction that ends the task run (one row per idempotency key), and
`deliver` sends it once that commits, with the task run's `Idempotency-Key`, then marks it SENT. The
sweeper sends rows left PENDING once their lease runs out (`redeliver_due`).

The guarantee, honestly: delivery is at-least-once with a stable key. A sender that dies after the
receiver got the request but before SENT was recorded leaves the row to the sweeper, which sends the same
request with the same key again: a receiver that deduplicates on `Idempotency-Key` sees exactly one
effect, one that does not sees the message twice (no sender can do better without the receiver's help).
Chorus itself never sends a row marked SENT or FAILED again, and never sends a request whose task run's
success did not commit.
"""

from __future__ import annotations

import functools
import logging
import threading
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx

from orchestrator import store
from orchestrator.core.ids import idempotency_key, new_id
from orchestrator.engine import pending
from orchestrator.engine.values import OutboundRequest
from orchestrator.observability.metrics import record_notification
from orchestrator.store import notification_outbox as outbox
from orchestrator.store.database import Session, transaction
from orchestrator.store.tables import ExecutionRow, TaskRunRow

if TYPE_CHECKING:
    from orchestrator.engine.facade import Engine

logger = logging.getLogger(__name__)

#: Added to a request's own timeouts to make its sender's lease: a sender still waiting for an answer
#: within its timeouts is never raced by the sweeper; one that died is replaced once the lease runs out.
LEASE_MARGIN_S = 2.0
#: Ended rows deleted per transaction by `purge_ended`.
PURGE_BATCH = 1000
#: Sends of one request before it is given up as FAILED (5xx, 429 and transport errors are retried).
MAX_SENDS = 8
#: The wait before the n-th retry is 2**n seconds, capped here: 8 sends span about four minutes.
MAX_BACKOFF_S = 120.0


@dataclass(frozen=True)
class Delivery:
    """What one send got: the HTTP code (None: no answer) and, unless it succeeded, why and whether to retry."""

    code: int | None
    error: str | None = None
    retryable: bool = False

    @property
    def ok(self) -> bool:
        return self.code is not None and 200 <= self.code < 300


def record(
    engine: Engine, session: Session, execution: ExecutionRow, row: TaskRunRow, request: OutboundRequest
) -> None:
    """Write a succeeded task run's request in the caller's transaction; send it once that commits.

    The row is leased to this process already (it sends right after the commit), so the sweeper leaves it
    alone unless this process dies first. A task run that already has a row (its key) records nothing.
    """
    now = store.transaction_now(session)  # the lease is judged by the database's clock (`take_due`)
    entry = outbox.OutboxEntry(
        id=new_id(),
        tenant=execution.tenant,
        idempotency_key=idempotency_key(row.id),
        execution_id=execution.id,
        task_run_id=row.id,
        task_id=row.task_id,
        kind=request.kind,
        method=request.method,
        url=request.url,
        target=target_of(request.url),
        headers=request.headers,
        body=request.body,
        connect_timeout_s=request.connect_timeout_s,
        read_timeout_s=request.read_timeout_s,
        status=outbox.PENDING,
        sends=0,
        due_at=now + _lease(request.connect_timeout_s, request.read_timeout_s),
        created_at=now,
    )
    if outbox.insert_entry(session, entry):
        pending.after_commit(session, functools.partial(deliver, engine, entry))


def deliver(engine: Engine, entry: outbox.OutboxEntry) -> Delivery:
    """Send one leased request with its Idempotency-Key and record what came of it."""
    delivery = send(entry)
    try:
        with engine.transaction() as session:
            now = store.transaction_now(session)  # a postponed send is due by the clock `take_due` reads
            if delivery.ok or not delivery.retryable or entry.sends + 1 >= MAX_SENDS:
                status = outbox.SENT if delivery.ok else outbox.FAILED
                if outbox.end_entry(session, entry.id, status, now, delivery.code, delivery.error):
                    _audit(session, entry, status, delivery)
                    record_notification(entry.kind, status.lower())
            else:
                backoff = min(2.0 ** (entry.sends + 1), MAX_BACKOFF_S)
                error = delivery.error or "no answer"
                outbox.postpone_entry(session, entry.id, now + timedelta(seconds=backoff), delivery.code, error)
                record_notification(entry.kind, "retried")
    except Exception:
        # The row stays PENDING: the sweeper sends it again, with the same key, once its lease runs out.
        logger.exception("recording the delivery of notification %s failed", entry.idempotency_key)
    return delivery


def redeliver_due(engine: Engine, *, most: int = 100) -> int:
    """Send the requests whose sender died or whose retry is due, one lease at a time; return how many.

    One row is leased per send, so a lease never runs out while its row waits behind slower sends (another
    replica's sweeper would take it and send it twice).
    """
    sent = 0
    while sent < most:
        with transaction(engine.sessions) as session:
            now = store.db_now(session)  # leases were set by the database's clock
            due = outbox.take_due(session, engine.settings.tenant, now, LEASE_MARGIN_S, limit=1)
        if not due:
            break
        entry = due[0]
        logger.info(
            "notification %s of task %s: sending again (send %d)",
            entry.idempotency_key,
            entry.task_id,
            entry.sends + 1,
            extra={"execution_id": entry.execution_id, "task_run_id": entry.task_run_id},
        )
        deliver(engine, entry)
        sent += 1
    return sent


def purge_ended(engine: Engine, *, batch: int = PURGE_BATCH, most_batches: int = 10) -> int:
    """Delete the rows that ended (SENT or FAILED) longer than `notification_retention_days` ago; how many.

    In batches, one transaction each, so that a large backlog (the first purge after an upgrade) never holds
    one long transaction or lock set; what is left past `most_batches` waits for the next purge."""
    before = store.utcnow() - timedelta(days=engine.settings.notification_retention_days)
    purged = 0
    for _ in range(most_batches):
        with transaction(engine.sessions) as session:
            deleted = outbox.purge_ended(session, before, batch)
        purged += deleted
        if deleted < batch:
            break
    if purged:
        logger.info("purged %d ended notification(s) from the outbox", purged)
    return purged


class Redelivery:
    """The sweeper's redelivery, off its loop: an unanswering receiver (up to its timeouts per request) must
    not hold back due retries and stalled executions. One run at a time; a kick while one runs does nothing."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def kick(self) -> None:
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._thread = threading.Thread(target=self._run, name="chorus-outbox", daemon=True)
            self._thread.start()

    def join(self, timeout_s: float | None = None) -> None:
        """Wait for the run under way, if any (tests, and a stopping sweeper)."""
        with self._lock:
            thread = self._thread
        if thread is not None:
            thread.join(timeout_s)

    def _run(self) -> None:
        try:
            redeliver_due(self._engine)
        except Exception:
            logger.exception("notification redelivery failed; the next sweep tries again")


def send(entry: outbox.OutboxEntry) -> Delivery:
    """One HTTP exchange of the request; 2xx delivers, 429/5xx/no answer may be retried, any other code fails."""
    headers = {**entry.headers, "Idempotency-Key": entry.idempotency_key}
    timeout = httpx.Timeout(entry.read_timeout_s, connect=entry.connect_timeout_s)
    try:
        with httpx.Client(timeout=timeout) as client:
            response = client.request(entry.method, entry.url, headers=headers, content=entry.body)
    except httpx.TransportError as e:
        return Delivery(None, f"{type(e).__name__} ({entry.target})", retryable=True)
    code = response.status_code
    if 200 <= code < 300:
        return Delivery(code)
    excerpt = response.text[:300]
    return Delivery(code, f"HTTP {code} from {entry.target}: {excerpt}", retryable=code == 429 or code >= 500)


def _audit(session: Session, entry: outbox.OutboxEntry, status: str, delivery: Delivery) -> None:
    payload: dict[str, object] = {
        "task_id": entry.task_id, "kind": entry.kind, "idempotency_key": entry.idempotency_key,
        "target": entry.target, "code": delivery.code, "sends": entry.sends + 1,
    }  # fmt: skip
    if delivery.error:
        payload["error"] = delivery.error
    action = "notification.sent" if status == outbox.SENT else "notification.failed"
    store.append_audit(
        session, entry.execution_id, actor="system:outbox", action=action, subject=entry.task_run_id, payload=payload
    )


def _lease(connect_timeout_s: float, read_timeout_s: float) -> timedelta:
    return timedelta(seconds=connect_timeout_s + read_timeout_s + LEASE_MARGIN_S)


def target_of(url: str) -> str:
    """Scheme and host only: what an operator may see of a URL whose path is often the secret."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}"
