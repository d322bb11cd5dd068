"""`GET /api/v1/{tenant}/ai/usage`: LLM tokens and cost by flow, model and day, and how close each budget is.

Budgets are the `budget: {maxTokens, maxCost, scope, period}` property of a live flow's tasks. Each shows
its current scope (`current`: the latest task run, execution or execution tree that called a model, or the
FLOW / NAMESPACE period now running) with what it used, what calls in flight reserved and what remains; per-run
scopes also show the latest and the heaviest run in the window as a fraction of each cap. Needs
`execution.read`; sums and budgets cover only visible namespaces.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from api.deps import PrincipalDep, SessionDep, TenantDep, authenticate
from api.errors import QueryInvalid
from api.permissions import Permission, allowed, prefixes
from orchestrator import store
from orchestrator.engine.accounts import PermissionDenied, Principal
from orchestrator.store import llm_budget_status as budget_status
from orchestrator.store import llm_usage as store_llm_usage
from orchestrator.store.database import Session
from orchestrator.store.llm_budget_status import BudgetStatus
from orchestrator.store.llm_usage import UsageSum, UsageWindow
from orchestrator.store.queries import namespace_in_prefix

router = APIRouter(tags=["AI"], dependencies=[Depends(authenticate)])

_DEFAULT_DAYS = 30


def _moment(name: str, value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise QueryInvalid(name, f"'{value}' is not an ISO-8601 date or date-time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _sum(s: UsageSum) -> dict[str, Any]:
    return {
        "tokensIn": s.tokens_in,
        "tokensOut": s.tokens_out,
        "tokens": s.tokens_in + s.tokens_out,
        "cost": round(s.cost, 6),
        "calls": s.calls,
    }


def _ratio(used: float, cap: Any) -> float | None:
    try:
        cap_value = float(cap)
    except (TypeError, ValueError):
        return None
    return round(used / cap_value, 4) if cap_value > 0 else None


def _closeness(s: UsageSum, budget: dict[str, Any]) -> dict[str, Any]:
    tokens = s.tokens_in + s.tokens_out
    ratios = [
        r for r in (_ratio(tokens, budget.get("maxTokens")), _ratio(s.cost, budget.get("maxCost"))) if r is not None
    ]
    return {
        "id": s.key[0],
        "at": store.iso(s.key[1]) if s.key[1] else None,
        "tokens": tokens,
        "cost": round(s.cost, 6),
        "tokensRatio": _ratio(tokens, budget.get("maxTokens")),
        "costRatio": _ratio(s.cost, budget.get("maxCost")),
        "ratio": max(ratios) if ratios else None,  #: the nearer of the two caps
    }


def _amounts(tokens: float | None, cost: float | None) -> dict[str, Any]:
    return {"tokens": tokens, "cost": round(cost, 6) if cost is not None else None}


def _current(st: BudgetStatus) -> dict[str, Any]:
    """The budget's current scope (latest run or current period): used, reserved by calls in flight, remaining."""
    b, sp = st.budget, st.spent
    ratios = [
        r
        for r in (
            _ratio(sp.tokens + sp.reserved_tokens, b.max_tokens),
            _ratio(sp.cost + sp.reserved_cost, b.max_cost),
        )
        if r is not None
    ]
    return {
        "subject": st.subject,
        "periodStart": store.iso(st.since) if st.since else None,
        "used": _amounts(sp.tokens, sp.cost),
        "reserved": _amounts(sp.reserved_tokens, sp.reserved_cost),
        "remaining": _amounts(st.remaining_tokens, st.remaining_cost),
        "ratio": max(ratios) if ratios else None,  #: used plus reserved, against the nearer cap
    }


def _budgets(session: Session, tenant: str, window: UsageWindow, principal: Principal) -> list[dict[str, Any]]:
    found = []
    now = store.db_now(session)
    for budget in budget_status.declared_budgets(session, tenant):
        ns, flow_id = budget.namespace, budget.flow_id
        if not allowed(principal, Permission.EXECUTION_READ, ns):
            continue
        if window.namespace and not namespace_in_prefix(ns, window.namespace):
            continue
        caps = {"maxTokens": budget.max_tokens, "maxCost": budget.max_cost}
        runs: list[UsageSum] | None = None
        if budget.scope == "TASK_RUN":
            runs = store_llm_usage.usage_by_task_run(session, window, ns, flow_id, budget.task_id)
        elif budget.scope in ("EXECUTION", "EXECUTION_TREE"):
            runs = store_llm_usage.usage_by_execution(session, window, ns, flow_id)
        closeness = [_closeness(r, caps) for r in runs or []]
        found.append(
            {
                "namespace": ns,
                "flowId": flow_id,
                "taskId": budget.task_id,
                "scope": budget.scope,
                "period": budget.period,
                "onExceed": budget.on_exceed,
                **caps,
                "current": _current(budget_status.status(session, budget, now)),
                "runs": len(runs) if runs is not None else None,  #: per-run scopes: the runs in the window
                "latest": closeness[-1] if closeness else None,
                "peak": max(closeness, key=lambda c: c["ratio"] or 0) if closeness else None,
            }
        )
    return found


@router.get("/ai/usage")
def ai_usage(
    request: Request,
    tenant: TenantDep,
    principal: PrincipalDep,
    session: SessionDep,
    from_: str | None = Query(default=None, alias="from", description="ISO-8601 lower bound (default: 30 days ago)."),
    to: str | None = Query(default=None, description="ISO-8601 upper bound (exclusive; default: now)."),
    namespace: str | None = Query(default=None, max_length=256, description="Namespace prefix."),
) -> dict[str, Any]:
    """Sums of the `llm_calls` ledger in a window, and every declared budget with its nearest approach."""
    visible = prefixes(principal, Permission.EXECUTION_READ)
    if visible == ():
        raise PermissionDenied(Permission.EXECUTION_READ, namespace)
    until = _moment("to", to)
    try:
        since = _moment("from", from_) or (until or datetime.now(UTC)) - timedelta(days=_DEFAULT_DAYS)
    except OverflowError:
        raise QueryInvalid("to", "too early for a default window: give 'from' too") from None
    if until is not None and since >= until:
        raise QueryInvalid("from", "must be before 'to'")
    window = UsageWindow(since=since, until=until, namespace=namespace, visible_prefixes=visible)
    by_flow = store_llm_usage.usage_by_flow(session, window)
    return {
        "from": store.iso(since),
        "to": store.iso(until) if until else None,
        "total": _sum(
            UsageSum(
                (),
                sum(s.tokens_in for s in by_flow),
                sum(s.tokens_out for s in by_flow),
                sum(s.cost for s in by_flow),
                sum(s.calls for s in by_flow),
            )
        ),
        "byFlow": [{"namespace": s.key[0], "flowId": s.key[1], **_sum(s)} for s in by_flow],
        "byModel": [
            {"provider": s.key[0], "model": s.key[1], **_sum(s)}
            for s in store_llm_usage.usage_by_model(session, window)
        ],
        "byDay": [{"day": s.key[0].isoformat(), **_sum(s)} for s in store_llm_usage.usage_by_day(session, window)],
        "budgets": _budgets(session, tenant, window, principal),
    }
