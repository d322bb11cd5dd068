"""Kestra's execution statistics: `POST /stats/executions/daily`, executions by state per time bucket.

Only executions in namespaces the caller may read are counted (`execution.read`). The bucket size follows the
range as in Kestra (minute up to 6 hours, hour up to a day, then day, week, month); every bucket is listed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from api.deps import EngineDep, PrincipalDep, TenantDep, authenticate
from api.errors import QueryInvalid
from api.permissions import Permission, prefixes
from orchestrator import store
from orchestrator.core import statistics
from orchestrator.core.durations import format_duration
from orchestrator.core.states import State
from orchestrator.store import search as store_search
from orchestrator.store.database import read_only
from orchestrator.store.queries import Filter, Group, Op, Search

router = APIRouter(tags=["Stats"], dependencies=[Depends(authenticate)])

#: Kestra's zero-filled counters: every state its UI charts, present even when nothing had it.
COUNTED_STATES = ("CREATED", "RUNNING", "RESTARTED", "KILLING", "SUCCESS", "WARNING", "FAILED", "KILLED", "PAUSED",
                  "QUEUED", "CANCELLED")  # fmt: skip
#: The longest range asked for at once (a month a bucket: 120 buckets).
MAX_RANGE = timedelta(days=3660)

Text = Field(default=None, max_length=256, pattern=r"^[^\x00]*$")


class StatisticRequest(BaseModel):
    """Kestra's StatisticRequest: every field optional; the range defaults to the last 30 days."""

    model_config = ConfigDict(extra="ignore")

    q: str | None = Text
    namespace: str | None = Text  #: a prefix
    flowId: str | None = Text  # Kestra's field names
    startDate: datetime | None = None
    endDate: datetime | None = None
    state: list[State] | None = Field(default=None, max_length=20)


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def _search(body: StatisticRequest, start: datetime, end: datetime, visible: tuple[str, ...] | None) -> Search:
    wanted = [
        Filter("startDate", Op.GREATER_THAN_OR_EQUAL_TO, (start.isoformat(),)),
        Filter("startDate", Op.LESS_THAN_OR_EQUAL_TO, (end.isoformat(),)),
    ]
    if body.namespace:
        wanted.append(Filter("namespace", Op.PREFIX, (body.namespace,)))
    if body.flowId:
        wanted.append(Filter("flowId", Op.EQUALS, (body.flowId,)))
    if body.q:
        wanted.append(Filter("q", Op.CONTAINS, (body.q,)))
    if body.state:
        wanted.append(Filter("state", Op.IN, tuple(str(s) for s in body.state)))
    return Search(where=Group(any_of=False, items=tuple(wanted)), visible_prefixes=visible)


def _bucket(moment: datetime, unit: str, rows: list[tuple[str, int, float, float, float]]) -> dict[str, Any]:
    counts = dict.fromkeys(COUNTED_STATES, 0)
    total = sum(n for _, n, _, _, _ in rows)
    seconds = [(lo, hi, s) for _, _, lo, hi, s in rows]
    for state, n, _, _, _ in rows:
        counts[state] = counts.get(state, 0) + n

    def span(value: float) -> str:
        return format_duration(timedelta(seconds=value))

    summed = sum(s for _, _, s in seconds)
    return {
        "startDate": store.iso(moment),
        "duration": {
            "min": span(min((lo for lo, _, _ in seconds), default=0)),
            "avg": span(summed / total if total else 0),
            "max": span(max((hi for _, hi, _ in seconds), default=0)),
            "sum": span(summed),
            "count": total,
        },
        "executionCounts": counts,
        "groupBy": unit,
    }


@router.post("/stats/executions/daily")
async def daily_statistics(
    body: StatisticRequest, tenant: TenantDep, principal: PrincipalDep, eng: EngineDep
) -> list[dict[str, Any]]:
    """Executions started in each bucket of [startDate, endDate], counted by current state, with durations."""
    end = _utc(body.endDate) if body.endDate else datetime.now(UTC)
    start = _utc(body.startDate) if body.startDate else end - timedelta(days=30)
    if start > end:
        raise QueryInvalid("startDate", "must be before endDate")
    if end - start > MAX_RANGE:
        raise QueryInvalid("startDate", f"the range may span at most {MAX_RANGE.days} days")
    unit = statistics.group_by(start, end)
    search = _search(body, start, end, prefixes(principal, Permission.EXECUTION_READ))

    def query() -> list[tuple[datetime, str, int, float, float, float]]:
        with read_only(eng.sessions) as session:
            return list(store_search.execution_statistics(session, tenant, search, unit))

    by_bucket: dict[datetime, list[tuple[str, int, float, float, float]]] = {}
    for moment, state, n, lo, hi, total in await run_in_threadpool(query):
        by_bucket.setdefault(moment.replace(tzinfo=UTC), []).append((state, n, lo, hi, total))
    return [_bucket(b, unit, by_bucket.get(b, [])) for b in statistics.buckets(start, end, unit)]
