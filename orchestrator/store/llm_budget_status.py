"""Where each declared LLM budget stands now: its limit, what its current scope used and what calls in flight hold.

A budget is the `budget:` map of a live flow's task. Its current scope is the one the next call would be
checked against: for TASK_RUN, EXECUTION and EXECUTION_TREE the latest task run / execution (tree) that
called a model; for FLOW and NAMESPACE the period bucket now runs in (aligned on the epoch, as the ledger's
check aligns it). Read by the console's AI page and the `chorus_llm_budget_*` gauges. Caller-owned Session.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from orchestrator.core.durations import parse_duration
from orchestrator.store.flows import live_flows
from orchestrator.store.llm_budget import BudgetScope, Spent, spent, tree_of
from orchestrator.store.tables import LlmCallRow, TaskRunRow

#: The flow property's scope names and the ledger's kinds (workers/ai.py `_SCOPES`).
SCOPE_KINDS = {
    "TASK_RUN": "task_run",
    "EXECUTION": "execution",
    "EXECUTION_TREE": "tree",
    "FLOW": "flow",
    "NAMESPACE": "namespace",
}
_DEFAULT_PERIOD = "P1D"


@dataclass(frozen=True)
class DeclaredBudget:
    """One task's `budget:` as a live flow declares it."""

    namespace: str
    flow_id: str
    task_id: str
    scope: str  #: TASK_RUN, EXECUTION, EXECUTION_TREE, FLOW, NAMESPACE
    max_tokens: int | None
    max_cost: float | None
    on_exceed: str
    period: str | None  #: FLOW and NAMESPACE: the ISO-8601 period they cap
    period_s: float | None

    @property
    def kind(self) -> str:
        return SCOPE_KINDS[self.scope]


@dataclass(frozen=True)
class BudgetStatus:
    """A budget's current scope: which run or period it is, and what it spent and holds in flight."""

    budget: DeclaredBudget
    subject: str | None  #: the task run or execution id counted (None: a period, or no call yet)
    since: datetime | None  #: FLOW and NAMESPACE: the start of the current period
    spent: Spent

    @property
    def remaining_tokens(self) -> int | None:
        cap = self.budget.max_tokens
        return None if cap is None else cap - self.spent.tokens - self.spent.reserved_tokens

    @property
    def remaining_cost(self) -> float | None:
        cap = self.budget.max_cost
        return None if cap is None else cap - self.spent.cost - self.spent.reserved_cost


def period_start(now: datetime, period_s: float) -> datetime:
    """The start of the period bucket `now` falls in (buckets aligned on the epoch: UTC days for P1D)."""
    stamp = now.timestamp()
    return datetime.fromtimestamp(stamp - stamp % period_s, UTC)


def _budget_maps(tasks: Any) -> Iterator[dict[str, Any]]:
    """Every task (nested flowables included, whatever their branch keys) that declares a budget map."""
    if isinstance(tasks, list):
        for item in tasks:
            yield from _budget_maps(item)
    elif isinstance(tasks, dict):
        if isinstance(tasks.get("budget"), dict) and "id" in tasks:
            yield tasks
        for key, value in tasks.items():
            if key != "budget" and isinstance(value, list | dict):
                yield from _budget_maps(value)


def read_budget(namespace: str, flow_id: str, task: dict[str, Any]) -> DeclaredBudget | None:
    """The budget of one task, or None when it cannot be read (the task itself fails on it, naming the field)."""
    raw = task["budget"]
    scope = str(raw.get("scope", "TASK_RUN")).upper()
    if scope not in SCOPE_KINDS:
        return None
    period, period_s = None, None
    try:
        if scope in ("FLOW", "NAMESPACE"):
            period = str(raw.get("period") or _DEFAULT_PERIOD)
            period_s = parse_duration(period).total_seconds()
            if period_s <= 0:
                return None
        max_tokens = int(raw["maxTokens"]) if raw.get("maxTokens") is not None else None
        max_cost = float(raw["maxCost"]) if raw.get("maxCost") is not None else None
    except (TypeError, ValueError):
        return None  # an expression or a typo: nothing to measure against
    on_exceed = str(raw.get("onExceed", "FAIL")).upper()
    return DeclaredBudget(namespace, flow_id, str(task["id"]), scope, max_tokens, max_cost, on_exceed, period, period_s)


def declared_budgets(session: Session, tenant: str) -> list[DeclaredBudget]:
    """Every budget the live flows of a tenant declare, in flow order."""
    found = []
    for flow in live_flows(session, tenant):
        document = flow.document
        for task in _budget_maps([document.get("tasks"), document.get("errors"), document.get("finally")]):
            budget = read_budget(flow.namespace, flow.flow_id, task)
            if budget is not None:
                found.append(budget)
    return found


def _latest_task_run(session: Session, budget: DeclaredBudget) -> tuple[str, str] | None:
    row = session.execute(
        select(LlmCallRow.task_run_id, LlmCallRow.execution_id)
        .join(TaskRunRow, TaskRunRow.id == LlmCallRow.task_run_id)
        .where(
            LlmCallRow.namespace == budget.namespace,
            LlmCallRow.flow_id == budget.flow_id,
            TaskRunRow.task_id == budget.task_id,
        )
        .group_by(LlmCallRow.task_run_id, LlmCallRow.execution_id)
        .order_by(func.max(LlmCallRow.at).desc())
        .limit(1)
    ).first()
    return (str(row[0]), str(row[1])) if row is not None else None


def _latest_execution(session: Session, budget: DeclaredBudget) -> str | None:
    found = session.scalar(
        select(LlmCallRow.execution_id)
        .where(LlmCallRow.namespace == budget.namespace, LlmCallRow.flow_id == budget.flow_id)
        .group_by(LlmCallRow.execution_id)
        .order_by(func.max(LlmCallRow.at).desc())
        .limit(1)
    )
    return str(found) if found is not None else None


def status(session: Session, budget: DeclaredBudget, now: datetime) -> BudgetStatus:
    """The budget's current scope and what it spent (recorded calls) and holds (unexpired reservations)."""
    ns, flow = budget.namespace, budget.flow_id
    none = Spent(0, 0.0, 0, 0.0)
    if budget.period_s is not None:
        since = period_start(now, budget.period_s)
        scope = BudgetScope(budget.kind, "", "", ns, flow, since)
        return BudgetStatus(budget, None, since, spent(session, scope, now))
    if budget.kind == "task_run":
        latest = _latest_task_run(session, budget)
        if latest is None:
            return BudgetStatus(budget, None, None, none)
        task_run_id, execution_id = latest
        scope = BudgetScope("task_run", execution_id, task_run_id, ns, flow)
        return BudgetStatus(budget, task_run_id, None, spent(session, scope, now))
    latest_execution = _latest_execution(session, budget)
    if latest_execution is None:
        return BudgetStatus(budget, None, None, none)
    # A tree's reservations are keyed by its root, as the ledger keys them when it reserves.
    counted = tree_of(session, latest_execution)[0] if budget.kind == "tree" else latest_execution
    scope = BudgetScope(budget.kind, counted, "", ns, flow)
    return BudgetStatus(budget, counted, None, spent(session, scope, now))
