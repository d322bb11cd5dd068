"""AI governance end to end: a restart does not call the model again, and a budget overrun fails the execution."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from orchestrator.celery_app import create_celery_app
from orchestrator.engine import Engine
from orchestrator.store.database import make_engine, make_sessionmaker
from orchestrator.triggers.wiring import build_engine
from tests.e2e.conftest import Stack
from tests.fakes.base import FakeResponse
from tests.fakes.openai_wire import OpenAIWire, Reply
from tests.fakes.webhook import WebhookReceiver
from tests.harness.services import psycopg_url

CLASSIFY_THEN_POST = """
id: classify-then-post
namespace: {ns}
inputs:
  - id: text
    type: STRING
  - id: maxTokens
    type: INT
    defaults: 1000
tasks:
  - id: classify
    type: io.kestra.plugin.openai.ChatCompletion
    apiKey: "{{ secret('OPENAI_API_KEY') }}"
    baseUrl: "{{ secret('OPENAI_BASE_URL') }}"
    model: gpt-4o-mini
    prompt: "Classify: {{ inputs.text }}"
    budget:
      maxTokens: "{{ inputs.maxTokens }}"
  - id: post
    type: io.kestra.plugin.core.http.Request
    uri: "{{ inputs.text | split(' ') | last }}"
    method: POST
    body:
      label: "{{ outputs.classify.choices[0].message.content }}"
"""


@pytest.fixture(scope="module")
def engine(stack: Stack) -> Iterator[Engine]:
    db = make_engine(stack.settings.database_url, pool_size=1)
    try:
        yield build_engine(stack.settings, make_sessionmaker(db), create_celery_app(stack.settings))
    finally:
        db.dispose()


def _llm_call_count(stack: Stack, execution_id: str) -> int:
    with psycopg.connect(psycopg_url(stack.settings.database_url)) as conn:
        row = conn.execute("SELECT count(*) FROM llm_calls WHERE execution_id = %s", (execution_id,)).fetchone()
    return int(row[0]) if row else 0


def test_a_restart_reruns_the_failed_task_without_calling_the_model_again(
    stack: Stack,
    engine: Engine,
    deploy_flow: Callable[[str], dict[str, Any]],
    unique_namespace: str,
    openai_wire: OpenAIWire,
    webhook_receiver: WebhookReceiver,
) -> None:
    deploy_flow(CLASSIFY_THEN_POST)
    path = f"/labels/{uuid.uuid4().hex}"
    url = webhook_receiver.script(path, FakeResponse.of_text("down", 400), FakeResponse.of_text("ok"))
    script = openai_wire.script(path, Reply.text("URGENT"), Reply.text("a different answer"))
    created = stack.run(unique_namespace, "classify-then-post", text=f"ticket {url}")
    failed = stack.wait_for_state(created["id"])
    assert failed["state"]["current"] == "FAILED"

    engine.restart(created["id"], actor="user:e2e")
    execution = stack.wait_for_state(created["id"], {"SUCCESS", "FAILED"}, timeout_s=60)

    assert execution["state"]["current"] == "SUCCESS"
    assert len(script.requests) == 1
    assert _llm_call_count(stack, created["id"]) == 1
    assert [r.json() for r in webhook_receiver.received(path)] == [{"label": "URGENT"}, {"label": "URGENT"}]


def test_a_budget_overrun_fails_the_execution(
    stack: Stack,
    deploy_flow: Callable[[str], dict[str, Any]],
    unique_namespace: str,
    openai_wire: OpenAIWire,
    webhook_receiver: WebhookReceiver,
) -> None:
    deploy_flow(CLASSIFY_THEN_POST)
    path = f"/labels/{uuid.uuid4().hex}"
    url = webhook_receiver.script(path, FakeResponse.of_text("ok"))
    openai_wire.script(path, Reply.text("URGENT", tokens_in=40, tokens_out=2))

    created = stack.run(unique_namespace, "classify-then-post", text=f"ticket {url}", maxTokens="5")
    execution = stack.wait_for_state(created["id"])

    assert execution["state"]["current"] == "FAILED"
    [classify] = [t for t in execution["taskRunList"] if t["taskId"] == "classify"]
    assert classify["state"]["current"] == "FAILED"
    assert webhook_receiver.received(path) == []
    logs = stack.api.get(f"/logs/{created['id']}").json()
    messages = [line["message"] for line in (logs if isinstance(logs, list) else logs.get("results", []))]
    assert any("LLM budget exceeded for this task run: 42 tokens (max 5)" in m for m in messages)
