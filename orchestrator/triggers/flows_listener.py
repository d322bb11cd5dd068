"""The flows listener: a process learns that a flow was deployed or deleted from a NOTIFY, not a query per end.

Every transaction that changes an execution's state gives the Flow-trigger reaction the flows' version its cached
candidates are checked against (`Engine.flows_version`). While this listener is healthy, that version is
an in-process token (no statement): the listener's identity, the flows' version it read once its LISTEN was
active, and the number of notifications it has heard since it started. Any deploy or delete commits a
NOTIFY (store/notify.py), which bumps the count and so makes the cache stale.

While it is not healthy (not started yet, connecting, its connection lost, the database restarting) the
version is read from the database on every end, as before. It is healthy again only once it has
re-connected, its LISTEN is active and it has read the flows' version after that: a change committed
between the last notification it heard and the new LISTEN is in that version, one committed after it is
notified. A connection lost is retried with a backoff; `close` stops the thread and closes its connection.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
from typing import Any

import psycopg

from orchestrator.store import notify as store_notify
from orchestrator.store import triggers as store_triggers
from orchestrator.store.database import Session

logger = logging.getLogger(__name__)

_serials = itertools.count(1)  # a listener's tokens never equal another's (two engines in one process)


class FlowsListener:
    """One LISTEN connection on a daemon thread for one tenant's flows; started at the first `version`."""

    def __init__(
        self, database_url: str, tenant: str, *, poll_s: float = 0.2, backoff_s: float = 0.1, max_backoff_s: float = 5.0
    ) -> None:
        self.database_url = database_url
        self.tenant = tenant
        self._poll_s = poll_s  # how long `close` may wait for the thread to see its stop
        self._backoff_s = backoff_s
        self._max_backoff_s = max_backoff_s
        self._serial = next(_serials)
        self._lock = threading.Lock()
        self._healthy = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None  # the process that started the thread (threads do not survive a fork)
        self._closed = False
        self._base: tuple[Any, ...] = ()  # the flows' version read after the current LISTEN became active
        self._heard = 0  # notifications for this tenant heard since start (never reset: tokens stay distinct)
        self._backend_pid: int | None = None

    def version(self, session: Session) -> tuple[Any, ...]:
        """The flows' version: the listener's token while healthy (no statement), else read from the database."""
        token = self.token()
        return token if token is not None else store_triggers.flows_version(session, self.tenant)

    def token(self) -> tuple[Any, ...] | None:
        """The in-process version while the listener is healthy; None while it must not be trusted."""
        self._ensure_started()
        with self._lock:
            if not self._healthy.is_set():
                return None
            return ("listened", self._serial, self._base, self._heard)

    def wait_healthy(self, timeout_s: float) -> bool:
        """Start the listener if need be; True once it is healthy, False after `timeout_s` without."""
        self._ensure_started()
        return self._healthy.wait(timeout_s)

    @property
    def healthy(self) -> bool:
        return self._healthy.is_set()

    @property
    def backend_pid(self) -> int | None:
        """The PostgreSQL backend of the current LISTEN connection (None while not connected)."""
        with self._lock:
            return self._backend_pid if self._healthy.is_set() else None

    def close(self) -> None:
        """Stop the thread and close its connection; the listener is not restarted after."""
        with self._lock:
            self._closed = True
            thread, self._thread = self._thread, None
            ours = self._pid == os.getpid()
            self._healthy.clear()
        self._stop.set()
        if thread is not None and ours and thread is not threading.current_thread():
            thread.join(timeout=self._poll_s + 5.0)

    def _ensure_started(self) -> None:
        pid = os.getpid()
        with self._lock:
            if self._closed or (self._thread is not None and self._pid == pid):
                return
            # First use, or first use in a forked child: the parent's thread is not here, and neither its
            # connection (left alone: closing it would end the parent's LISTEN) nor its health is ours.
            self._healthy, self._stop, self._pid = threading.Event(), threading.Event(), pid
            self._thread = threading.Thread(
                target=self._run, args=(self._healthy, self._stop), name="chorus-flows-listener", daemon=True
            )
            self._thread.start()

    def _run(self, healthy: threading.Event, stop: threading.Event) -> None:
        backoff_s = self._backoff_s
        while not stop.is_set():
            try:
                with store_notify.listen_flows(self.database_url) as conn:
                    base = store_triggers.flows_version_on(conn, self.tenant)  # after LISTEN: closes the gap
                    with self._lock:
                        self._base, self._backend_pid = base, conn.info.backend_pid
                        healthy.set()
                    backoff_s = self._backoff_s
                    self._hear(conn, stop)
            except psycopg.Error as e:
                if _database_gone(e):
                    # Dropped (a test's throwaway database, a decommissioned tenant): nothing to listen to, ever.
                    logger.info("flows listener: %s; stopping", e)
                    return
                logger.warning("flows listener: %s; reading the flows' version per execution end meanwhile", e)
            except Exception:  # a bug must not end the thread: the process would fall back for good
                logger.exception("flows listener failed; reading the flows' version per execution end meanwhile")
            finally:
                healthy.clear()
            if stop.wait(backoff_s):
                return
            backoff_s = min(backoff_s * 2, self._max_backoff_s)

    def _hear(self, conn: psycopg.Connection[Any], stop: threading.Event) -> None:
        while not stop.is_set():
            for notification in conn.notifies(timeout=self._poll_s):
                if notification.payload == self.tenant:
                    with self._lock:
                        self._heard += 1


def _database_gone(error: psycopg.Error) -> bool:
    """The database itself no longer exists (SQLSTATE 3D000, which a failed connection reports in its text)."""
    return error.sqlstate == "3D000" or ("database" in str(error) and "does not exist" in str(error))
