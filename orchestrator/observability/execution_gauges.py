"""A Prometheus collector of operator gauges read from PostgreSQL at scrape time, cached for a few seconds.

`chorus_executions{state}`: executions per live state (no flow or namespace label: cardinality stays fixed
at six series). `chorus_executions_stuck`: RUNNING executions with no progress and no heartbeat for the
stale window; the sweeper re-dispatches these, so a value that stays up means the re-dispatch is not
helping. Every server replica reports the same database: aggregate with max(), not sum().
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from orchestrator.core.states import State
from orchestrator.store.database import Session, read_only, sessionmaker
from orchestrator.store.errors import SQLAlchemyError
from orchestrator.store.metrics import executions_by_live_state, stuck_executions

logger = logging.getLogger(__name__)


class ExecutionGaugesCollector(Collector):
    """Counts live and stuck executions with two indexed queries per `cache_s`, however often it is scraped."""

    def __init__(self, stale_after_s: float, *, cache_s: float = 10.0) -> None:
        self._stale_after_s = stale_after_s
        self._cache_s = cache_s
        self._sessions: sessionmaker[Session] | None = None
        self._lock = threading.Lock()  # concurrent scrapes share one query
        self._read_at = -float("inf")
        self._counts: dict[State, int] = {}
        self._stuck = 0

    def attach(self, sessions: sessionmaker[Session]) -> None:
        """Start reading from `sessions` (made in the app's lifespan, after the collector is registered)."""
        self._sessions = sessions

    def _refresh(self) -> bool:
        with self._lock:
            if time.monotonic() - self._read_at < self._cache_s:
                return True
            if self._sessions is None:
                return False
            try:
                with read_only(self._sessions) as session:
                    self._counts = executions_by_live_state(session)
                    self._stuck = stuck_executions(session, self._stale_after_s)
            except SQLAlchemyError:
                # No series rather than stale ones: a dashboard shows the gap, an alert on absent() fires.
                logger.warning("could not count executions for /metrics", exc_info=True)
                return False
            self._read_at = time.monotonic()
            return True

    def collect(self) -> Iterator[Metric]:
        if not self._refresh():
            return
        by_state = GaugeMetricFamily("chorus_executions", "Executions in each live state.", labels=["state"])
        for state, count in self._counts.items():
            by_state.add_metric([str(state)], float(count))
        yield by_state
        yield GaugeMetricFamily(
            "chorus_executions_stuck",
            "RUNNING executions with no progress and no task run heartbeat for the stale window.",
            value=float(self._stuck),
        )
