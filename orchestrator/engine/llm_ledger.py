"""The LLM ledger: every model call recorded with its tokens, cost and latency, audited on its execution's chain.

Workers reach it through `Engine.llm_ledger()` (they may not touch the store). Each call is one
transaction: the `llm_calls` row and its `llm.call` audit event commit together, so the audit trail and
the accounting never disagree. A replayed answer (a re-run attempt reusing a recorded response) is
audited as `llm.replayed` and adds no row: it cost nothing.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from orchestrator import store
from orchestrator.llm_prices import LlmSettings, cost_of
from orchestrator.observability import gen_ai
from orchestrator.observability.metrics import record_llm_budget_check, record_llm_call
from orchestrator.store import llm as store_llm
from orchestrator.store import llm_budget as store_llm_budget
from orchestrator.store import locks as store_locks
from orchestrator.store.database import Session, read_only, sessionmaker, transaction


@dataclass(frozen=True)
class LlmCall:
    """One HTTP exchange with a model provider, as the worker saw it."""

    execution_id: str
    task_run_id: str
    task_id: str
    attempt: int
    namespace: str
    flow_id: str
    provider: str
    model: str
    request_hash: str
    request: dict[str, Any]  #: what was sent, without credentials
    response: dict[str, Any] | None
    tokens_in: int
    tokens_out: int
    latency_ms: float
    finish_reason: str | None
    error: str | None
    actor: str  #: e.g. "worker:<host>:<pid>:<celery id>"


@dataclass(frozen=True)
class RecordedCall:
    id: int
    cost: float


@dataclass(frozen=True)
class LlmUsage:
    tokens_in: int
    tokens_out: int
    cost: float
    calls: int

    @property
    def tokens(self) -> int:
        return self.tokens_in + self.tokens_out


@dataclass(frozen=True)
class BudgetCheck:
    """The outcome of reserving a call against a budget: a reservation to release, or a refusal."""

    reservation_id: int | None  #: None: refused, the budget is spent (recorded usage plus calls in flight)
    spent: store_llm_budget.Spent


class LlmLedger:
    """Record, replay and sum LLM calls over a database."""

    def __init__(self, sessions: sessionmaker[Session], settings: LlmSettings) -> None:
        self._sessions = sessions
        self._settings = settings

    def record(self, call: LlmCall) -> RecordedCall:
        """Store one call and audit it, in one transaction; the cost comes from the price table."""
        cost = cost_of(self._settings.prices, call.model, call.tokens_in, call.tokens_out)
        with transaction(self._sessions) as session:
            at = store.transaction_now(session)  # budget periods are cut by the database's clock (`scope`)
            call_id = store_llm.insert_llm_call(
                session,
                {
                    "execution_id": call.execution_id,
                    "task_run_id": call.task_run_id,
                    "attempt": call.attempt,
                    "namespace": call.namespace,
                    "flow_id": call.flow_id,
                    "provider": call.provider,
                    "model": call.model,
                    "request_hash": call.request_hash,
                    "request": call.request,
                    "response": call.response,
                    "tokens_in": call.tokens_in,
                    "tokens_out": call.tokens_out,
                    "cost": cost,
                    "latency_ms": call.latency_ms,
                    "finish_reason": call.finish_reason,
                    "error": call.error,
                    "at": at,
                },
            )
            payload: dict[str, Any] = {
                "call_id": call_id,
                "task_id": call.task_id,
                "attempt": call.attempt,
                "provider": call.provider,
                "model": call.model,
                "request_hash": call.request_hash,
                "tokens_in": call.tokens_in,
                "tokens_out": call.tokens_out,
                "cost": cost,
                "latency_ms": round(call.latency_ms, 3),
                "finish_reason": call.finish_reason,
            }
            if call.error is not None:
                payload["error"] = call.error
            event = store.append_audit(
                session, call.execution_id, actor=call.actor, action="llm.call", subject=call.task_run_id,
                payload=payload, at=at,
            )  # fmt: skip
        # Counted once committed, with bounded labels only (provider, model, outcome).
        record_llm_call(
            call.provider,
            call.model,
            outcome="error" if call.error else "ok",
            prompt_tokens=call.tokens_in,
            completion_tokens=call.tokens_out,
            cost_usd=cost,
            duration_s=call.latency_ms / 1000,
        )
        gen_ai.chat_call(
            execution_id=call.execution_id, task_run_id=call.task_run_id, attempt=call.attempt, provider=call.provider,
            request=call.request, response=call.response, tokens_in=call.tokens_in, tokens_out=call.tokens_out,
            cost_usd=cost, latency_ms=call.latency_ms, finish_reason=call.finish_reason, error=call.error,
            audit_hash=event.hash, call_id=call_id,
        )  # fmt: skip
        return RecordedCall(call_id, cost)

    def replay(self, task_run_id: str, request_hash: str) -> tuple[int, dict[str, Any]] | None:
        """The recorded successful answer to this exact request in this task run, with its call id."""
        with read_only(self._sessions) as session:
            return store_llm.recorded_response(session, task_run_id, request_hash)

    def note_replay(
        self,
        call: LlmCall,
        replayed_call_id: int,
        response: dict[str, Any] | None = None,
        *,
        served_from: str | None = None,
    ) -> None:
        """Audit that an attempt reused a recorded answer instead of calling the model (traced, not metered).

        `served_from`: the execution whose call it was, when a ledger replay serves another execution's answer.
        """
        payload: dict[str, Any] = {
            "call_id": replayed_call_id,
            "task_id": call.task_id,
            "attempt": call.attempt,
            "model": call.model,
            "request_hash": call.request_hash,
        }
        if served_from is not None:
            payload["served_from"] = served_from
        with transaction(self._sessions) as session:
            event = store.append_audit(
                session, call.execution_id, actor=call.actor, action="llm.replayed", subject=call.task_run_id,
                payload=payload,
            )  # fmt: skip
        tokens_in, tokens_out = _usage(response)
        gen_ai.chat_call(
            execution_id=call.execution_id, task_run_id=call.task_run_id, attempt=call.attempt, provider=call.provider,
            request=call.request, response=response, tokens_in=tokens_in, tokens_out=tokens_out, cost_usd=0.0,
            latency_ms=0.0, finish_reason=None, error=None, audit_hash=event.hash, call_id=replayed_call_id,
            replayed=True,
        )  # fmt: skip

    def usage(self, *, task_run_id: str | None = None, execution_id: str | None = None) -> LlmUsage:
        """Tokens and cost so far, for one task run or one execution (budgets)."""
        with read_only(self._sessions) as session:
            return LlmUsage(*store_llm.usage(session, task_run_id=task_run_id, execution_id=execution_id))

    def scope(self, call: LlmCall, kind: str, period_s: float | None) -> store_llm_budget.BudgetScope:
        """The budget scope of `kind` for this call (flow and namespace: the period bucket it falls in)."""
        since = None
        if period_s is not None:
            with read_only(self._sessions) as session:  # the clock the calls' `at` is stamped by
                now = store.db_now(session).timestamp()
            since = datetime.fromtimestamp(now - now % period_s, UTC)  # buckets aligned on the epoch (UTC days)
        return store_llm_budget.BudgetScope(
            kind, call.execution_id, call.task_run_id, call.namespace, call.flow_id, since
        )

    def scope_usage(self, scope: store_llm_budget.BudgetScope) -> LlmUsage:
        """Tokens and cost recorded in a budget scope (the after-call check)."""
        with read_only(self._sessions) as session:
            spent = store_llm_budget.spent(session, scope, store.db_now(session))
        return LlmUsage(spent.tokens, 0, spent.cost, 0)

    def reserve(
        self,
        call: LlmCall,
        scope: store_llm_budget.BudgetScope,
        *,
        max_tokens: int | None,
        max_cost: float | None,
        want_tokens_in: int,
        want_tokens_out: int | None,
        ttl_s: float,
    ) -> BudgetCheck:
        """Reserve what `call` may spend (its prompt estimate plus `maxTokens`) under a budget, or refuse.

        Refused once recorded usage plus in-flight reservations reach a cap. A call without `maxTokens`
        reserves the whole remainder: it has the budget to itself until it is recorded.
        """
        with transaction(self._sessions) as session:
            if scope.kind == "tree":  # one lock and one set of reservations for the whole tree: its root's
                scope = dataclasses.replace(
                    scope, execution_id=store_llm_budget.tree_of(session, scope.execution_id)[0]
                )
            store_locks.lock_llm_budget(session, scope.key)
            now = store.db_now(session)
            spent = store_llm_budget.spent(session, scope, now)
            tokens, cost = spent.tokens + spent.reserved_tokens, spent.cost + spent.reserved_cost
            if (max_tokens is not None and tokens >= max_tokens) or (max_cost is not None and cost >= max_cost):
                record_llm_budget_check(scope.kind, reserved=False)
                return BudgetCheck(None, spent)
            if want_tokens_out is not None:
                want_tokens = want_tokens_in + want_tokens_out
                want_cost = cost_of(self._settings.prices, call.model, want_tokens_in, want_tokens_out)
            else:
                want_tokens = max_tokens - tokens if max_tokens is not None else 0
                want_cost = max_cost - cost if max_cost is not None else 0.0
            reservation_id = store_llm_budget.insert_reservation(
                session,
                scope_key=scope.key,
                execution_id=call.execution_id,
                task_run_id=call.task_run_id,
                tokens=want_tokens,
                cost=want_cost,
                expires_at=now + timedelta(seconds=ttl_s),
            )
        record_llm_budget_check(scope.kind, reserved=True)
        return BudgetCheck(reservation_id, spent)

    def release(self, reservation_id: int) -> None:
        """Drop a reservation once its call's usage is recorded (or it was never sent)."""
        with transaction(self._sessions) as session:
            store_llm_budget.delete_reservation(session, reservation_id)
            store_llm_budget.delete_expired(session, store.db_now(session))


def _usage(response: dict[str, Any] | None) -> tuple[int, int]:
    usage = (response or {}).get("usage") or {}
    return int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
