"""LLM budgets under concurrency: calls reserve their `maxTokens` before they are sent, so parallel calls of one
execution cannot all pass the check, and a budget overshoots by at most one call (real Postgres, real HTTP)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from orchestrator import store
from orchestrator.core.ids import new_id
from orchestrator.core.states import State
from orchestrator.engine import Engine, TaskOutcome
from orchestrator.observability.metrics import metrics
from orchestrator.store import llm as store_llm
from orchestrator.store.database import make_engine, make_sessionmaker, transaction
from orchestrator.store.tables import ExecutionRow, LlmBudgetReservationRow
from orchestrator.triggers.wiring import build_engine
from tests.fakes.openai_wire import DEFAULT_API_KEY, OpenAIWire, Reply
from tests.integration.workers.conftest import claim, one_task_flow
from workers.runtime import run_claimed

BUDGET_TOKENS = 1000
CALL_MAX_TOKENS = 100
PARALLEL_CALLS = 20


def _chat(wire: OpenAIWire, prompt: str, task_id: str, budget: str, *, max_tokens: bool = True) -> str:
    limit = f"    maxTokens: {CALL_MAX_TOKENS}\n" if max_tokens else ""
    return one_task_flow(
        "    type: io.kestra.plugin.ai.openai.ChatCompletion\n"
        f"    apiKey: {DEFAULT_API_KEY}\n    baseUrl: {wire.base_url}\n    model: gpt-4o-mini\n"
        f"    prompt: {prompt}\n{limit}{budget}",
        task_id=task_id,
    )


def _start_chain(engine: Engine, execution_id: str) -> None:
    """The execution's audit chain as a real execution has it (created first), so parallel appends queue on it."""
    with transaction(engine.sessions) as session:
        store.append_audit(session, execution_id, actor="test", action="execution.created", subject=None, payload={})


@pytest.fixture
def wide_engine(worker_engine: Engine) -> Iterator[Engine]:
    """The worker engine with a connection for each parallel call (the session fixture keeps two)."""
    db = make_engine(worker_engine.settings.database_url, pool_size=PARALLEL_CALLS + 2)
    engine = build_engine(worker_engine.settings, make_sessionmaker(db), worker_engine.celery)
    try:
        yield engine
    finally:
        engine.close()
        db.dispose()


def test_parallel_calls_against_one_execution_budget_overshoot_by_at_most_one_call(
    wide_engine: Engine, openai_wire: OpenAIWire
) -> None:
    word = f"w{uuid.uuid4().hex}"
    # Slow answers: every call is in flight while the others check the budget.
    script = openai_wire.script(word, replace(Reply.text("ok", tokens_in=20, tokens_out=80), delay_s=0.5))
    execution_id = new_id()
    _start_chain(wide_engine, execution_id)
    budget = f"    budget:\n      maxTokens: {BUDGET_TOKENS}\n      scope: EXECUTION"

    def call(i: int) -> TaskOutcome:
        task_id = f"t{i}"
        return run_claimed(
            claim(_chat(openai_wire, f"{word} {i}", task_id, budget), task_id, execution_id=execution_id), wide_engine
        )

    refusals = metrics().llm_budget_checks.labels("execution", "refused")
    refused_before = refusals._value.get()
    with ThreadPoolExecutor(PARALLEL_CALLS) as pool:
        outcomes = list(pool.map(call, range(PARALLEL_CALLS)))

    with wide_engine.sessions() as session:
        calls = store_llm.calls_of(session, execution_id)
        left = session.scalar(select(func.count()).where(LlmBudgetReservationRow.execution_id == execution_id))
    spent = sum(c.tokens_in + c.tokens_out for c in calls)
    passed = [o for o in outcomes if o.state is State.SUCCESS]
    refused = [o for o in outcomes if o.state is State.FAILED]
    assert spent <= BUDGET_TOKENS + CALL_MAX_TOKENS, spent
    assert len(passed) + len(refused) == PARALLEL_CALLS
    assert refused and all("LLM budget exceeded for this execution" in (o.error or "") for o in refused)
    assert all(o.retryable is False for o in refused)
    assert refusals._value.get() - refused_before == len(refused)  # counted in chorus_llm_budget_checks
    # Only the calls that passed reached the provider; every one of them is in the ledger.
    assert len(script.requests) == len(passed) == len(calls)
    assert left == 0  # each reservation went once its usage was recorded

    # Reservations are worst cases: what they left unspent is taken one call at a time, then nothing passes.
    more = [call(PARALLEL_CALLS + i) for i in range(3)]
    assert more[-1].state is State.FAILED and "budget exceeded" in (more[-1].error or "")
    sent = len(script.requests)
    late = call(PARALLEL_CALLS + 3)
    assert late.state is State.FAILED and "budget exceeded" in (late.error or "")
    assert len(script.requests) == sent  # no provider call dispatched after exhaustion
    with wide_engine.sessions() as session:
        total = sum(c.tokens_in + c.tokens_out for c in store_llm.calls_of(session, execution_id))
    assert BUDGET_TOKENS <= total <= BUDGET_TOKENS + CALL_MAX_TOKENS, total


def test_a_call_without_max_tokens_holds_the_whole_remainder_while_it_is_in_flight(
    wide_engine: Engine, openai_wire: OpenAIWire
) -> None:
    word = f"w{uuid.uuid4().hex}"
    script = openai_wire.script(word, replace(Reply.text("ok", tokens_in=5, tokens_out=5), delay_s=0.5))
    execution_id = new_id()
    _start_chain(wide_engine, execution_id)
    budget = f"    budget:\n      maxTokens: {BUDGET_TOKENS}\n      scope: EXECUTION"

    def call(i: int) -> TaskOutcome:
        task_id = f"t{i}"
        source = _chat(openai_wire, f"{word} {i}", task_id, budget, max_tokens=False)
        return run_claimed(claim(source, task_id, execution_id=execution_id), wide_engine)

    with ThreadPoolExecutor(4) as pool:
        outcomes = list(pool.map(call, range(4)))

    # Calls that overlapped the first one were refused; none ran without a reservation.
    passed = [o for o in outcomes if o.state is State.SUCCESS]
    assert 1 <= len(passed) < 4 and len(script.requests) == len(passed)
    assert any("calls in flight hold" in (o.error or "") for o in outcomes if o.state is State.FAILED)


def _execution(engine: Engine, execution_id: str, parent_id: str | None) -> None:
    """An execution row (a subflow's names its parent), as the tree scope walks them."""
    now = datetime.now(UTC)
    with transaction(engine.sessions) as session:
        session.add(
            ExecutionRow(
                id=execution_id,
                tenant="main",
                namespace="tests.workers",
                flow_id="t",
                flow_revision=1,
                state="RUNNING",
                state_history=[],
                inputs={},
                outputs=None,
                labels=[],
                trigger=None,
                parent_execution_id=parent_id,
                parent_task_run_id=None,
                original_id=execution_id,
                created_at=now,
                updated_at=now,
                ended_at=None,
            )
        )


def _spend(engine: Engine, wire: OpenAIWire, prompt: str, budget: str, *, execution_id: str, flow: str = "t") -> Any:
    source = _chat(wire, prompt, "t", budget, max_tokens=False)
    if flow != "t":
        source = source.replace("id: t\nnamespace: tests.workers", f"id: {flow}\nnamespace: tests.{flow}")
    return run_claimed(claim(source, "t", execution_id=execution_id), engine)


def test_an_execution_tree_budget_counts_the_parent_and_its_subflow_executions(
    wide_engine: Engine, openai_wire: OpenAIWire
) -> None:
    word = f"w{uuid.uuid4().hex}"
    script = openai_wire.script(word, Reply.text("ok", tokens_in=90, tokens_out=10))
    parent, child, stranger = new_id(), new_id(), new_id()
    for execution_id, parent_id in ((parent, None), (child, parent), (stranger, None)):
        _execution(wide_engine, execution_id, parent_id)
    budget = "    budget:\n      maxTokens: 100\n      scope: EXECUTION_TREE"

    first = _spend(wide_engine, openai_wire, f"{word} a", budget, execution_id=parent)
    in_child = _spend(wide_engine, openai_wire, f"{word} b", budget, execution_id=child)
    elsewhere = _spend(wide_engine, openai_wire, f"{word} c", budget, execution_id=stranger)

    assert first.state is State.SUCCESS, first.error
    assert in_child.state is State.FAILED
    assert "LLM budget exceeded for this execution tree: 100 tokens (max 100)" in (in_child.error or "")
    assert elsewhere.state is State.SUCCESS, elsewhere.error  # another tree has its own budget
    assert len(script.requests) == 2


def test_a_flow_budget_per_period_counts_every_execution_of_the_flow(
    wide_engine: Engine, openai_wire: OpenAIWire
) -> None:
    word, flow = f"w{uuid.uuid4().hex}", f"f{uuid.uuid4().hex[:12]}"
    script = openai_wire.script(word, Reply.text("ok", tokens_in=90, tokens_out=10))
    budget = "    budget:\n      maxTokens: 100\n      scope: FLOW\n      period: P1D"

    first = _spend(wide_engine, openai_wire, f"{word} a", budget, execution_id=new_id(), flow=flow)
    second = _spend(wide_engine, openai_wire, f"{word} b", budget, execution_id=new_id(), flow=flow)
    other_flow = _spend(wide_engine, openai_wire, f"{word} c", budget, execution_id=new_id(), flow=f"{flow}x")

    assert first.state is State.SUCCESS, first.error
    assert second.state is State.FAILED and "for this flow in this period: 100 tokens" in (second.error or "")
    assert other_flow.state is State.SUCCESS, other_flow.error
    assert len(script.requests) == 2


def test_a_namespace_budget_counts_its_child_namespaces_and_a_bad_period_is_refused(
    wide_engine: Engine, openai_wire: OpenAIWire
) -> None:
    word, flow = f"w{uuid.uuid4().hex}", f"f{uuid.uuid4().hex[:12]}"
    script = openai_wire.script(word, Reply.text("ok", tokens_in=90, tokens_out=10))
    budget = "    budget:\n      maxTokens: 100\n      scope: NAMESPACE"

    source = _chat(openai_wire, f"{word} a", "t", budget, max_tokens=False)
    source = source.replace("id: t\nnamespace: tests.workers", f"id: other\nnamespace: tests.{flow}.team")
    first = run_claimed(claim(source, "t", execution_id=new_id()), wide_engine)  # in a child namespace
    parent = _spend(wide_engine, openai_wire, f"{word} b", budget, execution_id=new_id(), flow=flow)
    bad = _spend(wide_engine, openai_wire, f"{word} c", f"{budget}\n      period: daily", execution_id=new_id())

    assert first.state is State.SUCCESS, first.error
    assert parent.state is State.FAILED and "for this namespace in this period" in (parent.error or "")
    assert bad.state is State.FAILED and "budget.period must be an ISO-8601 duration" in (bad.error or "")
    assert len(script.requests) == 1
