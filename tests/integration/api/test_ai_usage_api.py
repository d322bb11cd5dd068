"""`GET /ai/usage`: the LLM ledger summed by flow, model and day, budgets with their nearest approach, per RBAC."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from orchestrator import store
from orchestrator.core.ids import new_id
from orchestrator.engine.accounts import Binding
from orchestrator.engine.llm_ledger import LlmCall
from orchestrator.store import llm_budget as store_llm_budget
from orchestrator.store.database import transaction
from orchestrator.store.tables import TaskRunRow
from tests.integration.api.conftest import ADMIN

USAGE = "/api/v1/main/ai/usage"

BUDGETED = """
id: {flow}
namespace: {ns}
tasks:
  - id: classify
    type: io.kestra.plugin.openai.ChatCompletion
    model: gpt-4o-mini
    prompt: hello
    budget:
      maxTokens: 1000
  - id: wrap
    type: io.kestra.plugin.core.flow.Sequential
    tasks:
      - id: summarise
        type: io.kestra.plugin.openai.ChatCompletion
        model: gpt-4o
        prompt: hello
        budget:
          maxCost: 0.01
          scope: EXECUTION
"""


def _call(app: Any, namespace: str, flow: str, execution_id: str, task_run_id: str, model: str, tokens: int) -> None:
    app.state.engine.llm_ledger().record(
        LlmCall(
            execution_id=execution_id, task_run_id=task_run_id, task_id="classify", attempt=1,
            namespace=namespace, flow_id=flow, provider="openai", model=model, request_hash=uuid.uuid4().hex,
            request={}, response={}, tokens_in=tokens // 2, tokens_out=tokens - tokens // 2, latency_ms=5.0,
            finish_reason="stop", error=None, actor="test",
        )
    )  # fmt: skip


def _task_run(app: Any, execution_id: str, task_id: str) -> str:
    run_id = new_id()
    now = store.utcnow()
    with transaction(app.state.engine.sessions) as session:
        session.add(
            TaskRunRow(
                id=run_id, execution_id=execution_id, task_id=task_id, state="SUCCESS", state_history=[],
                attempt=1, attempts=[], created_at=now, updated_at=now,
            )
        )  # fmt: skip
    return run_id


@pytest.fixture
def ledger(auth_client: TestClient) -> dict[str, str]:
    """Two namespaces with spend: `ai.n…` (two executions of a budgeted flow) and `other.n…`."""
    ns, other = f"ai.n{uuid.uuid4().hex[:8]}", f"other.n{uuid.uuid4().hex[:8]}"
    for namespace in (ns, other):
        source = BUDGETED.format(flow="agent", ns=namespace)
        response = auth_client.post(
            "/api/v1/main/flows", content=source, headers={"Content-Type": "application/x-yaml"}, auth=ADMIN
        )
        assert response.status_code == 200, response.text
    app = auth_client.app
    first, second = new_id(), new_id()
    _call(app, ns, "agent", first, _task_run(app, first, "classify"), "gpt-4o-mini", 300)
    _call(app, ns, "agent", first, _task_run(app, first, "summarise"), "gpt-4o", 100)
    _call(app, ns, "agent", second, _task_run(app, second, "classify"), "gpt-4o-mini", 900)
    _call(app, other, "agent", new_id(), new_id(), "gpt-4o-mini", 50)
    return {"ns": ns, "other": other, "first": first, "second": second}


def test_usage_sums_tokens_and_cost_by_flow_model_and_day(auth_client: TestClient, ledger: dict[str, str]) -> None:
    usage = auth_client.get(USAGE, params={"namespace": ledger["ns"]}, auth=ADMIN).json()

    assert usage["total"]["tokens"] == 1300 and usage["total"]["calls"] == 3
    assert [(r["flowId"], r["tokens"]) for r in usage["byFlow"]] == [("agent", 1300)]
    models = {r["model"]: r for r in usage["byModel"]}
    assert models["gpt-4o-mini"]["tokens"] == 1200 and models["gpt-4o"]["tokens"] == 100
    # Prices from the table: gpt-4o-mini 0.15/0.60 $ per M tokens in/out.
    assert models["gpt-4o-mini"]["cost"] == pytest.approx((600 * 0.15 + 600 * 0.60) / 1e6)
    assert len(usage["byDay"]) == 1 and usage["byDay"][0]["tokens"] == 1300


def test_each_budget_reports_its_latest_and_heaviest_run(auth_client: TestClient, ledger: dict[str, str]) -> None:
    usage = auth_client.get(USAGE, params={"namespace": ledger["ns"]}, auth=ADMIN).json()

    budgets = {b["taskId"]: b for b in usage["budgets"]}
    per_task_run = budgets["classify"]
    assert per_task_run["scope"] == "TASK_RUN" and per_task_run["runs"] == 2
    assert per_task_run["latest"]["tokens"] == 900 and per_task_run["latest"]["ratio"] == pytest.approx(0.9)
    assert per_task_run["peak"]["ratio"] == pytest.approx(0.9)
    # A nested task's budget counts per execution: the first execution's two calls, against $0.01.
    per_execution = budgets["summarise"]
    assert per_execution["scope"] == "EXECUTION" and per_execution["runs"] == 2
    first = (150 * 0.15 + 150 * 0.60) / 1e6 + (50 * 2.5 + 50 * 10.0) / 1e6
    assert per_execution["peak"]["id"] == ledger["first"]
    assert per_execution["peak"]["costRatio"] == pytest.approx(first / 0.01, abs=1e-4)


def test_usage_covers_only_namespaces_the_caller_can_read(auth_client: TestClient, ledger: dict[str, str]) -> None:
    accounts = auth_client.app.state.accounts  # type: ignore[attr-defined]
    accounts.create_user("otto", "otto-password", [Binding("viewer", ledger["other"])], actor="test")

    usage = auth_client.get(USAGE, auth=("otto", "otto-password")).json()

    assert {r["namespace"] for r in usage["byFlow"]} == {ledger["other"]}
    assert usage["total"]["tokens"] == 50
    assert {b["namespace"] for b in usage["budgets"]} == {ledger["other"]}


def test_usage_needs_a_role_and_credentials(auth_client: TestClient) -> None:
    accounts = auth_client.app.state.accounts  # type: ignore[attr-defined]
    accounts.create_user("nobody", "nobody-password", [], actor="test")

    assert auth_client.get(USAGE).status_code == 401
    assert auth_client.get(USAGE, auth=("nobody", "nobody-password")).status_code == 403


def test_a_bad_time_bound_names_its_parameter(auth_client: TestClient) -> None:
    response = auth_client.get(USAGE, params={"from": "yesterday"}, auth=ADMIN)

    assert response.status_code == 422
    assert response.json()["_embedded"]["errors"][0]["path"] == "from"
    reversed_window = auth_client.get(USAGE, params={"from": "2026-02-01", "to": "2026-01-01"}, auth=ADMIN)
    assert reversed_window.status_code == 422
    # No default window fits before year 1: a 422 naming `to`, not an overflow.
    too_early = auth_client.get(USAGE, params={"to": "0001-01-02"}, auth=ADMIN)
    assert too_early.status_code == 422 and too_early.json()["_embedded"]["errors"][0]["path"] == "to"


SCOPED = """
id: {flow}
namespace: {ns}
tasks:
  - id: per_flow
    type: io.kestra.plugin.openai.ChatCompletion
    model: gpt-4o-mini
    prompt: hello
    budget:
      maxTokens: 5000
      scope: FLOW
      period: PT1H
  - id: per_namespace
    type: io.kestra.plugin.openai.ChatCompletion
    model: gpt-4o-mini
    prompt: hello
    budget:
      maxCost: 0.5
      scope: NAMESPACE
      onExceed: PAUSE
  - id: per_tree
    type: io.kestra.plugin.openai.ChatCompletion
    model: gpt-4o-mini
    prompt: hello
    budget:
      maxTokens: 2000
      scope: EXECUTION_TREE
"""


def test_each_budget_shows_its_current_scope_with_used_reserved_and_remaining(
    auth_client: TestClient, ledger: dict[str, str]
) -> None:
    app = auth_client.app
    ns = ledger["ns"]
    response = auth_client.post(
        "/api/v1/main/flows",
        content=SCOPED.format(flow="scoped", ns=ns),
        headers={"Content-Type": "application/x-yaml"},
        auth=ADMIN,
    )
    assert response.status_code == 200, response.text
    execution = new_id()
    run = _task_run(app, execution, "per_flow")
    _call(app, ns, "scoped", execution, run, "gpt-4o-mini", 400)
    with transaction(app.state.engine.sessions) as session:  # a call in flight of the latest execution
        expires = store.utcnow() + timedelta(minutes=5)
        store_llm_budget.insert_reservation(
            session, scope_key=f"tree:{execution}", execution_id=execution, task_run_id=run, tokens=250, cost=0.0,
            expires_at=expires,
        )  # fmt: skip

    usage = auth_client.get(USAGE, params={"namespace": ns}, auth=ADMIN).json()

    budgets = {b["taskId"]: b for b in usage["budgets"]}
    per_flow = budgets["per_flow"]
    assert (per_flow["scope"], per_flow["period"], per_flow["runs"]) == ("FLOW", "PT1H", None)
    assert per_flow["current"]["used"]["tokens"] == 400  # this flow's calls in the current hour only
    assert per_flow["current"]["remaining"] == {"tokens": 4600, "cost": None}
    assert per_flow["current"]["periodStart"] is not None
    per_namespace = budgets["per_namespace"]
    assert (per_namespace["period"], per_namespace["onExceed"]) == ("P1D", "PAUSE")  # the default period
    assert per_namespace["current"]["used"]["tokens"] == 1300 + 400  # every flow of the namespace today
    per_tree = budgets["per_tree"]
    assert per_tree["current"]["subject"] == execution
    assert per_tree["current"]["used"]["tokens"] == 400
    assert per_tree["current"]["reserved"]["tokens"] == 250
    assert per_tree["current"]["remaining"]["tokens"] == 2000 - 400 - 250
    assert per_tree["current"]["ratio"] == pytest.approx(650 / 2000)
    # The per-task-run budget counts its latest task run (the second execution's 900 tokens).
    assert budgets["classify"]["current"]["used"]["tokens"] == 900
    assert budgets["classify"]["current"]["reserved"] == {"tokens": 0, "cost": 0.0}


def test_metrics_export_each_budgets_limit_used_reserved_and_remaining(
    auth_client: TestClient, ledger: dict[str, str]
) -> None:
    app = auth_client.app
    ns = ledger["ns"]
    execution = new_id()
    run = _task_run(app, execution, "classify")
    _call(app, ns, "agent", execution, run, "gpt-4o-mini", 200)
    with transaction(app.state.engine.sessions) as session:  # the latest task run has a call in flight
        store_llm_budget.insert_reservation(
            session, scope_key=f"task_run:{run}", execution_id=execution, task_run_id=run, tokens=300, cost=0.0,
            expires_at=store.utcnow() + timedelta(minutes=5),
        )  # fmt: skip

    samples = {
        (s.name, s.labels["task"], s.labels["unit"]): s.value
        for family in text_string_to_metric_families(auth_client.get("/metrics").text)
        for s in family.samples
        if s.name.startswith("chorus_llm_budget_") and s.labels.get("namespace") == ns
    }

    assert samples[("chorus_llm_budget_limit", "classify", "tokens")] == 1000
    assert samples[("chorus_llm_budget_used", "classify", "tokens")] == 200  # its latest task run
    assert samples[("chorus_llm_budget_reserved", "classify", "tokens")] == 300
    assert samples[("chorus_llm_budget_remaining", "classify", "tokens")] == 500
    assert samples[("chorus_llm_budget_limit", "summarise", "usd")] == pytest.approx(0.01)
    assert ("chorus_llm_budget_limit", "summarise", "tokens") not in samples  # no maxTokens: no tokens series
