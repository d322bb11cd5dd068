"""SQL for LLM budgets: reserve what a model call may spend before it is sent, release it once recorded.

Caller-owned Session. A reservation is taken under a transaction-scoped advisory lock on the budget's
scope, after summing what the scope's calls spent (`llm_calls`) and what its in-flight calls reserved:
two calls of one execution cannot both read the same remainder and both pass. Usage recorded plus
reservations never exceed what was checked, so the overshoot of a budget is at most one call's reservation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, delete, func, insert, or_, select
from sqlalchemy.orm import Session

from orchestrator.store.tables import ExecutionRow, LlmBudgetReservationRow, LlmCallRow


@dataclass(frozen=True)
class BudgetScope:
    """What a budget caps: one task run, one execution, an execution tree, or a flow / namespace per period."""

    kind: str  #: task_run, execution, tree, flow, namespace
    execution_id: str
    task_run_id: str
    namespace: str
    flow_id: str
    since: datetime | None = None  #: flow and namespace: the start of the current period

    @property
    def key(self) -> str:
        """The lock and reservation key (a tree is keyed per execution: see `LlmLedger.reserve`)."""
        period = f"@{self.since.isoformat()}" if self.since is not None else ""
        return {
            "task_run": f"task_run:{self.task_run_id}",
            "execution": f"execution:{self.execution_id}",
            "tree": f"tree:{self.execution_id}",
            "flow": f"flow:{self.namespace}/{self.flow_id}{period}",
            "namespace": f"namespace:{self.namespace}{period}",
        }[self.kind]


@dataclass(frozen=True)
class Spent:
    """A budget scope's recorded usage and its in-flight reservations."""

    tokens: int
    cost: float
    reserved_tokens: int
    reserved_cost: float


def scope_conditions(session: Session, scope: BudgetScope) -> list[ColumnElement[bool]]:
    """Which recorded calls count against a budget scope."""
    if scope.kind == "task_run":
        return [LlmCallRow.task_run_id == scope.task_run_id]
    if scope.kind == "execution":
        return [LlmCallRow.execution_id == scope.execution_id]
    if scope.kind == "tree":
        return [LlmCallRow.execution_id.in_(tree_of(session, scope.execution_id))]
    since = [LlmCallRow.at >= scope.since] if scope.since is not None else []
    if scope.kind == "flow":
        return [LlmCallRow.namespace == scope.namespace, LlmCallRow.flow_id == scope.flow_id, *since]
    escaped = scope.namespace.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    within = or_(LlmCallRow.namespace == scope.namespace, LlmCallRow.namespace.like(escaped + ".%", escape="\\"))
    return [within, *since]


def tree_of(session: Session, execution_id: str) -> list[str]:
    """The ids of an execution's whole tree: its root (parents followed up) and every subflow execution under it."""
    root = execution_id
    for _ in range(64):  # a subflow depth far past any real flow; stops a corrupt cycle
        parent = session.scalar(select(ExecutionRow.parent_execution_id).where(ExecutionRow.id == root))
        if parent is None:
            break
        root = parent
    tree, frontier = [root], [root]
    while frontier:
        frontier = list(session.scalars(select(ExecutionRow.id).where(ExecutionRow.parent_execution_id.in_(frontier))))
        tree += frontier
    return tree


def spent(session: Session, scope: BudgetScope, now: datetime) -> Spent:
    """Tokens and cost recorded for the scope, and what its unexpired reservations hold."""
    used = select(
        func.coalesce(func.sum(LlmCallRow.tokens_in + LlmCallRow.tokens_out), 0),
        func.coalesce(func.sum(LlmCallRow.cost), 0.0),
    ).where(*scope_conditions(session, scope))
    tokens, cost = session.execute(used).one()
    scope_key = scope.key
    reserved_tokens, reserved_cost = session.execute(
        select(
            func.coalesce(func.sum(LlmBudgetReservationRow.tokens), 0),
            func.coalesce(func.sum(LlmBudgetReservationRow.cost), 0.0),
        ).where(LlmBudgetReservationRow.scope_key == scope_key, LlmBudgetReservationRow.expires_at > now)
    ).one()
    return Spent(int(tokens), float(cost), int(reserved_tokens), float(reserved_cost))


def spent_until(session: Session, scope: BudgetScope, call_id: int) -> tuple[int, float]:
    """Tokens and cost the scope had recorded once call `call_id` was (a ledger replay re-judges its budget)."""
    used = select(
        func.coalesce(func.sum(LlmCallRow.tokens_in + LlmCallRow.tokens_out), 0),
        func.coalesce(func.sum(LlmCallRow.cost), 0.0),
    ).where(*scope_conditions(session, scope), LlmCallRow.id <= call_id)
    tokens, cost = session.execute(used).one()
    return int(tokens), float(cost)


def insert_reservation(
    session: Session,
    *,
    scope_key: str,
    execution_id: str,
    task_run_id: str | None,
    tokens: int,
    cost: float,
    expires_at: datetime,
) -> int:
    statement = (
        insert(LlmBudgetReservationRow)
        .values(
            scope_key=scope_key,
            execution_id=execution_id,
            task_run_id=task_run_id,
            tokens=tokens,
            cost=cost,
            expires_at=expires_at,
        )
        .returning(LlmBudgetReservationRow.id)
    )
    return int(session.execute(statement).scalar_one())


def delete_reservation(session: Session, reservation_id: int) -> None:
    session.execute(delete(LlmBudgetReservationRow).where(LlmBudgetReservationRow.id == reservation_id))


def delete_expired(session: Session, now: datetime) -> None:
    session.execute(delete(LlmBudgetReservationRow).where(LlmBudgetReservationRow.expires_at <= now))
