"""A Prometheus collector of LLM budgets read from PostgreSQL at scrape time: limit, used, reserved, remaining.

One series per declared budget and unit (`tokens` for maxTokens, `usd` for maxCost), labelled by namespace,
flow, task and scope; the values are the budget's current scope (store/llm_budget_status.py: the latest run,
or the FLOW / NAMESPACE period now running). `remaining` is the limit less used and reserved; it goes below
zero by at most one call's reservation (the overshoot the check allows). Cached for a few seconds: a scrape
costs a few indexed queries per budget, however often it comes. Every API replica reports the same
database: aggregate with max(), not sum().
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from orchestrator.store import db_now
from orchestrator.store.database import Session, read_only, sessionmaker
from orchestrator.store.errors import SQLAlchemyError
from orchestrator.store.llm_budget_status import BudgetStatus, declared_budgets, status

logger = logging.getLogger(__name__)

_LABELS = ["namespace", "flow", "task", "scope", "unit"]
_GAUGES = {
    "limit": "The budget's cap (maxTokens or maxCost), by unit.",
    "used": "What the budget's current scope (latest run, or current period) recorded.",
    "reserved": "What the budget's current scope holds for model calls in flight.",
    "remaining": "The cap less used and reserved: what the next calls of the current scope may still spend.",
}


class BudgetGaugesCollector(Collector):
    """`chorus_llm_budget_{limit,used,reserved,remaining}{namespace,flow,task,scope,unit}` per `cache_s`."""

    def __init__(self, tenant: str, *, cache_s: float = 10.0) -> None:
        self._tenant = tenant
        self._cache_s = cache_s
        self._sessions: sessionmaker[Session] | None = None
        self._lock = threading.Lock()  # concurrent scrapes share one read
        self._read_at = -float("inf")
        self._statuses: list[BudgetStatus] = []

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
                    now = db_now(session)
                    self._statuses = [status(session, b, now) for b in declared_budgets(session, self._tenant)]
            except SQLAlchemyError:
                # No series rather than stale ones: a dashboard shows the gap, an alert on absent() fires.
                logger.warning("could not read LLM budgets for /metrics", exc_info=True)
                return False
            self._read_at = time.monotonic()
            return True

    def collect(self) -> Iterator[Metric]:
        if not self._refresh():
            return
        families = {
            name: GaugeMetricFamily(f"chorus_llm_budget_{name}", text, labels=_LABELS) for name, text in _GAUGES.items()
        }
        for st in self._statuses:
            b, sp = st.budget, st.spent
            base = [b.namespace, b.flow_id, b.task_id, b.scope]
            if b.max_tokens is not None and st.remaining_tokens is not None:
                values = (b.max_tokens, sp.tokens, sp.reserved_tokens, st.remaining_tokens)
                for family, value in zip(families.values(), values, strict=True):
                    family.add_metric([*base, "tokens"], float(value))
            if b.max_cost is not None and st.remaining_cost is not None:
                values_usd = (b.max_cost, sp.cost, sp.reserved_cost, st.remaining_cost)
                for family, usd in zip(families.values(), values_usd, strict=True):
                    family.add_metric([*base, "usd"], usd)
        yield from families.values()
