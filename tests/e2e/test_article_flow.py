"""The article's customer-feedback flow, deployed as a user would deploy it, end to end.

The deploy file is used unchanged: its secret() calls resolve to `SECRET_*` variables the e2e stack gives
its worker, pointing at the OpenAI-wire and Jira fake servers. Executions start through the flow's own
webhook trigger, with the JSON body `{"feedback": ...}`.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.e2e.conftest import Stack
from tests.fakes.jira import JiraServer
from tests.fakes.openai_wire import OpenAIWire, Reply
from tests.harness.services import psycopg_url

DEPLOY_FILE = Path(__file__).parents[2] / "examples" / "customer-feedback-analysis.deploy.yaml"
NAMESPACE, FLOW_ID, WEBHOOK_KEY = "company.support", "customer-feedback-analysis", "feedback-7c1e"


@pytest.fixture(scope="module", autouse=True)
def _deployed(stack: Stack) -> None:
    """The deploy file, exactly as shipped (POST /flows creates it once; the flow then serves every test)."""
    stack.deploy(DEPLOY_FILE.read_text())


def _feedback_execution(stack: Stack, feedback: str) -> dict[str, Any]:
    """POST the feedback to the flow's webhook, as the support form would, and wait for the execution."""
    response = stack.api.post(f"/executions/webhook/{NAMESPACE}/{FLOW_ID}/{WEBHOOK_KEY}", json={"feedback": feedback})
    assert response.status_code == 200, response.text
    return stack.wait_for_state(response.json()["id"], timeout_s=60)


def _llm_calls(stack: Stack, execution_id: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(psycopg_url(stack.settings.database_url)) as conn:
        return conn.execute(
            "SELECT task_run_id, provider, model, tokens_in, tokens_out, cost, latency_ms, finish_reason, error "
            "FROM llm_calls WHERE execution_id = %s ORDER BY id",
            (execution_id,),
        ).fetchall()


def _audit(stack: Stack, execution_id: str) -> list[tuple[str, dict[str, Any]]]:
    with psycopg.connect(psycopg_url(stack.settings.database_url)) as conn:
        rows = conn.execute(
            "SELECT action, payload FROM audit_events WHERE chain_key = %s ORDER BY seq", (execution_id,)
        ).fetchall()
    return [(action, payload) for action, payload in rows]


def test_negative_feedback_opens_a_jira_issue_with_the_feedback(
    stack: Stack, openai_wire: OpenAIWire, jira_server: JiraServer
) -> None:
    feedback = f"The app crashed twice and I lost my order ({uuid.uuid4().hex})"
    script = openai_wire.script(feedback, Reply.text("NEGATIVE", tokens_in=40, tokens_out=1))

    execution = _feedback_execution(stack, feedback)

    assert execution["state"]["current"] == "SUCCESS"
    runs = {t["taskId"]: t for t in execution["taskRunList"]}
    assert list(runs) == ["analyze-sentiment", "check-sentiment", "create-jira-ticket"]
    assert runs["analyze-sentiment"]["outputs"]["choices"][0]["message"]["content"] == "NEGATIVE"
    [issue] = jira_server.issues_mentioning(feedback)
    assert issue.fields["description"] == f"Feedback: {feedback}"
    assert issue.fields["project"] == {"key": "SUPPORT"} and issue.auth == "basic"
    assert runs["create-jira-ticket"]["outputs"]["key"] == issue.key
    assert feedback in script.requests[0]["messages"][0]["content"]


def test_positive_feedback_opens_no_issue(stack: Stack, openai_wire: OpenAIWire, jira_server: JiraServer) -> None:
    feedback = f"Lovely service, thank you ({uuid.uuid4().hex})"
    openai_wire.script(feedback, Reply.text("POSITIVE"))

    execution = _feedback_execution(stack, feedback)

    assert execution["state"]["current"] == "SUCCESS"
    assert [t["taskId"] for t in execution["taskRunList"]] == ["analyze-sentiment", "check-sentiment"]
    assert jira_server.issues_mentioning(feedback) == []


def test_the_llm_call_is_in_the_ledger_and_the_audit_with_tokens_and_cost(
    stack: Stack, openai_wire: OpenAIWire
) -> None:
    feedback = f"Meh, it works ({uuid.uuid4().hex})"
    openai_wire.script(feedback, Reply.text("NEUTRAL", tokens_in=1000, tokens_out=10))

    execution = _feedback_execution(stack, feedback)

    analyze = next(t for t in execution["taskRunList"] if t["taskId"] == "analyze-sentiment")
    [call] = _llm_calls(stack, execution["id"])
    task_run_id, provider, model, tokens_in, tokens_out, cost, latency_ms, finish_reason, error = call
    assert (task_run_id, provider, model) == (analyze["id"], "openai", "gpt-4o-mini")
    assert (tokens_in, tokens_out, finish_reason, error) == (1000, 10, "stop", None)
    assert cost == pytest.approx((1000 * 0.15 + 10 * 0.60) / 1_000_000)
    assert latency_ms > 0
    [payload] = [p for action, p in _audit(stack, execution["id"]) if action == "llm.call"]
    assert payload["tokens_in"] == 1000 and payload["cost"] == pytest.approx(cost)
    assert payload["model"] == "gpt-4o-mini" and payload["task_id"] == "analyze-sentiment"
