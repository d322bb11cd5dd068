"""The article's customer-feedback flow, deployed as a user would deploy it, end to end.

The deploy file is used unchanged: its secret() calls resolve to `SECRET_*` variables the e2e stack gives
its worker, pointing at the OpenAI-wire and Jira fake servers. The webhook route
(`/executions/webhook/{ns}/{id}/{key}`) is not built yet, so the execution starts through
`Engine.submit(..., trigger={"body": ...})`, the call that route will make.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from orchestrator.celery_app import create_celery_app
from orchestrator.database import make_engine, make_sessionmaker
from orchestrator.engine import Engine
from tests.e2e.conftest import Stack
from tests.fakes.jira import JiraServer
from tests.fakes.openai_wire import OpenAIWire, Reply
from tests.harness.services import psycopg_url

DEPLOY_FILE = Path(__file__).parents[2] / "examples" / "customer-feedback-analysis.deploy.yaml"
NAMESPACE, FLOW_ID = "company.support", "customer-feedback-analysis"


@pytest.fixture(scope="module")
def engine(stack: Stack) -> Iterator[Engine]:
    """The engine as the webhook route would use it (same database and broker as the stack)."""
    db = make_engine(stack.settings.database_url, pool_size=1)
    try:
        yield Engine(stack.settings, make_sessionmaker(db), create_celery_app(stack.settings))
    finally:
        db.dispose()


@pytest.fixture(scope="module", autouse=True)
def _deployed(stack: Stack) -> None:
    """The deploy file, exactly as shipped (POST /flows creates it once; the flow then serves every test)."""
    stack.deploy(DEPLOY_FILE.read_text())


def _feedback_execution(stack: Stack, engine: Engine, feedback: str) -> dict[str, Any]:
    row = engine.submit(
        NAMESPACE, FLOW_ID, inputs={}, actor="trigger:feedback", trigger={"body": {"feedback": feedback}}
    )
    return stack.wait_for_state(row.id, timeout_s=60)


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
    stack: Stack, engine: Engine, openai_wire: OpenAIWire, jira_server: JiraServer
) -> None:
    feedback = f"The app crashed twice and I lost my order ({uuid.uuid4().hex})"
    script = openai_wire.script(feedback, Reply.text("NEGATIVE", tokens_in=40, tokens_out=1))

    execution = _feedback_execution(stack, engine, feedback)

    assert execution["state"]["current"] == "SUCCESS"
    runs = {t["taskId"]: t for t in execution["taskRunList"]}
    assert list(runs) == ["analyze-sentiment", "check-sentiment", "create-jira-ticket"]
    assert runs["analyze-sentiment"]["outputs"]["choices"][0]["message"]["content"] == "NEGATIVE"
    [issue] = jira_server.issues_mentioning(feedback)
    assert issue.fields["description"] == f"Feedback: {feedback}"
    assert issue.fields["project"] == {"key": "SUPPORT"} and issue.auth == "basic"
    assert runs["create-jira-ticket"]["outputs"]["key"] == issue.key
    assert feedback in script.requests[0]["messages"][0]["content"]


def test_positive_feedback_opens_no_issue(
    stack: Stack, engine: Engine, openai_wire: OpenAIWire, jira_server: JiraServer
) -> None:
    feedback = f"Lovely service, thank you ({uuid.uuid4().hex})"
    openai_wire.script(feedback, Reply.text("POSITIVE"))

    execution = _feedback_execution(stack, engine, feedback)

    assert execution["state"]["current"] == "SUCCESS"
    assert [t["taskId"] for t in execution["taskRunList"]] == ["analyze-sentiment", "check-sentiment"]
    assert jira_server.issues_mentioning(feedback) == []


def test_the_llm_call_is_in_the_ledger_and_the_audit_with_tokens_and_cost(
    stack: Stack, engine: Engine, openai_wire: OpenAIWire
) -> None:
    feedback = f"Meh, it works ({uuid.uuid4().hex})"
    openai_wire.script(feedback, Reply.text("NEUTRAL", tokens_in=1000, tokens_out=10))

    execution = _feedback_execution(stack, engine, feedback)

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
