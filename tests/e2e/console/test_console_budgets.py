"""The console's AI page in headless Chromium: every budget scope with its limit, used, reserved and remaining."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from tests.e2e.console.conftest import ADMIN, ConsoleStack
from tests.fakes.openai_wire import OpenAIWire, Reply
from tests.harness.services import psycopg_url

pytestmark = [pytest.mark.needs_chromium, pytest.mark.slow]  # a browser or a cluster per test: `pytest -m slow`

NS = f"console.bud{uuid.uuid4().hex[:8]}"  #: a namespace of its own: the NAMESPACE budget counts only this flow
PROMPT = f"console-budgets {uuid.uuid4().hex}"


def _chat(task_id: str, budget: str) -> str:
    return (
        f"  - id: {task_id}\n    type: io.kestra.plugin.openai.ChatCompletion\n"
        "    apiKey: \"{{ secret('OPENAI_API_KEY') }}\"\n    baseUrl: \"{{ secret('OPENAI_BASE_URL') }}\"\n"
        f"    model: gpt-4o-mini\n    prompt: '{PROMPT}'\n    budget:\n{budget}"
    )


#: Five model calls of 40 tokens each, one budget of every scope.
SCOPES = f"id: budgeted\nnamespace: {NS}\ntasks:\n" + "".join(
    _chat(task_id, budget)
    for task_id, budget in (
        ("per_task_run", "      maxTokens: 100\n"),
        ("per_execution", "      maxTokens: 1000\n      scope: EXECUTION\n"),
        ("per_tree", "      maxTokens: 2000\n      scope: EXECUTION_TREE\n"),
        ("per_flow", "      maxTokens: 10000\n      scope: FLOW\n      period: PT1H\n"),
        ("per_namespace", "      maxTokens: 50000\n      maxCost: 1\n      scope: NAMESPACE\n"),
    )
)


def _login(page: Any) -> None:
    page.goto("/ui/flows")
    page.wait_for_url(re.compile(r"/ui/login"))
    page.fill("#username", ADMIN[0])
    page.fill("#password", ADMIN[1])
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/ui/flows"))


def _hold(stack: ConsoleStack, scope_key: str, execution_id: str, tokens: int) -> None:
    """A model call in flight: the reservation the ledger takes before sending it."""
    with psycopg.connect(psycopg_url(stack.database_url)) as conn:
        conn.execute(
            "INSERT INTO llm_budget_reservations (scope_key, execution_id, task_run_id, tokens, cost, expires_at) "
            "VALUES (%s, %s, NULL, %s, 0, %s)",
            (scope_key, execution_id, tokens, datetime.now(UTC) + timedelta(minutes=10)),
        )


def test_the_ai_page_shows_each_budget_scope_with_limit_used_reserved_and_remaining(
    new_page: Callable[[], Any], console_stack: ConsoleStack, openai_wire: OpenAIWire
) -> None:
    openai_wire.script(PROMPT, Reply.text("fine", tokens_in=30, tokens_out=10))
    console_stack.deploy(SCOPES)
    execution = console_stack.admin.post(f"/executions/{NS}/budgeted").json()
    assert console_stack.wait_for_state(execution["id"], timeout_s=60)["state"]["current"] == "SUCCESS"
    _hold(console_stack, f"tree:{execution['id']}", execution["id"], 300)

    page = new_page()
    _login(page)
    page.goto("/ui/ai-usage")
    page.wait_for_selector("#budgets")

    def cells(task_id: str) -> dict[str, str]:
        row = page.locator(f"#budgets tr[data-task={task_id}]")
        return {
            name: row.locator(f"td.{name}").inner_text().strip()
            for name in ("scope", "limit", "used", "reserved", "remaining", "now")
        }

    task_run = cells("per_task_run")
    assert (task_run["scope"], task_run["limit"], task_run["used"]) == ("task run", "100 tok", "40 tok")
    assert (task_run["reserved"], task_run["remaining"]) == ("0 tok", "60 tok")
    assert task_run["now"].startswith("40%")
    assert cells("per_execution")["used"] == "200 tok" and cells("per_execution")["remaining"] == "800 tok"
    tree = cells("per_tree")
    assert (tree["scope"], tree["used"], tree["reserved"], tree["remaining"]) == (
        "execution tree",
        "200 tok",
        "300 tok",
        "1500 tok",
    )
    assert tree["now"].startswith("25%")  # 500 of 2000: the call in flight counts
    link = page.locator("#budgets tr[data-task=per_tree] td.now a")
    assert link.get_attribute("href") == f"/ui/executions/{execution['id']}"  # the execution (tree) it counts
    flow = cells("per_flow")
    assert (flow["scope"], flow["used"], flow["remaining"]) == ("flow per PT1H", "200 tok", "9800 tok")
    assert "since" in flow["now"]
    namespace = cells("per_namespace")
    assert namespace["scope"] == "namespace per P1D"
    assert namespace["limit"] == "50000 tok · $1.00"
    assert namespace["used"].startswith("200 tok · $0.0000")
    page.screenshot(path=str(console_stack.screenshots / "ai-budgets.png"), full_page=True)
