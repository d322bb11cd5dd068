"""ChatCompletion through the openai SDK against the OpenAI-wire server: outputs, ledger, retries, budgets, replay."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from orchestrator import store
from orchestrator.core.ids import new_id
from orchestrator.core.states import State
from orchestrator.engine import Engine
from orchestrator.store import llm as store_llm
from orchestrator.store.tables import LlmCallRow
from tests.fakes.openai_wire import DEFAULT_API_KEY, OpenAIWire, Reply
from tests.integration.workers.conftest import Runner, SetSecrets, one_task_flow


@pytest.fixture
def word() -> str:
    """A unique word that routes this test's requests to its own script on the shared server."""
    return f"w{uuid.uuid4().hex}"


def _chat(wire: OpenAIWire, body: str, *, model: str = "gpt-4o-mini", task_id: str = "t") -> str:
    return one_task_flow(
        "    type: io.kestra.plugin.ai.openai.ChatCompletion\n"
        f"    apiKey: {DEFAULT_API_KEY}\n    baseUrl: {wire.base_url}\n    model: {model}\n{body}",
        task_id=task_id,
    )


def _calls(engine: Engine, execution_id: str) -> list[LlmCallRow]:
    with engine.sessions() as session:
        return store_llm.calls_of(session, execution_id)


def _audit(engine: Engine, execution_id: str) -> list[tuple[str, dict[str, Any]]]:
    with engine.sessions() as session:
        return [(e.action, e.payload) for e in store.audit_events(session, execution_id)]


def test_the_answer_comes_back_in_openais_shape(run_task: Runner, openai_wire: OpenAIWire, word: str) -> None:
    openai_wire.script(word, Reply.text("NEGATIVE", tokens_in=1000, tokens_out=500))

    outcome = run_task(_chat(openai_wire, f'    prompt: "Classify: {word}"'), "t")

    assert outcome.state is State.SUCCESS, outcome.error
    assert outcome.outputs is not None
    assert outcome.outputs["choices"][0]["message"]["content"] == "NEGATIVE"
    assert outcome.outputs["choices"][0]["finish_reason"] == "stop"
    assert outcome.outputs["usage"] == {"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500}
    assert outcome.outputs["model"] == "gpt-4o-mini"


def test_every_call_is_recorded_with_tokens_cost_and_latency_and_audited(
    run_task: Runner, openai_wire: OpenAIWire, worker_engine: Engine, word: str
) -> None:
    openai_wire.script(word, Reply.text("POSITIVE", tokens_in=1000, tokens_out=500))
    execution_id = new_id()

    run_task(_chat(openai_wire, f'    prompt: "Classify: {word}"'), "t", execution_id=execution_id)

    [call] = _calls(worker_engine, execution_id)
    assert (call.provider, call.model, call.tokens_in, call.tokens_out) == ("openai", "gpt-4o-mini", 1000, 500)
    assert call.cost == pytest.approx((1000 * 0.15 + 500 * 0.60) / 1_000_000)
    assert call.latency_ms > 0 and call.finish_reason == "stop" and call.error is None
    assert call.request["messages"] == [{"role": "user", "content": f"Classify: {word}"}]
    assert len(call.request_hash) == 64
    [(action, payload)] = [a for a in _audit(worker_engine, execution_id) if a[0].startswith("llm.")]
    assert action == "llm.call"
    assert payload["call_id"] == call.id and payload["tokens_in"] == 1000 and payload["cost"] == call.cost


def test_system_message_messages_and_parameters_are_sent(run_task: Runner, openai_wire: OpenAIWire, word: str) -> None:
    script = openai_wire.script(word, Reply.text("ok"))
    body = (
        "    systemMessage: Be terse.\n    messages:\n      - type: USER\n        content: first\n"
        "      - role: assistant\n        content: noted\n"
        f'    prompt: "now {word}"\n    temperature: 0.2\n    maxTokens: "64"\n    seed: 7'
    )

    outcome = run_task(_chat(openai_wire, body), "t")

    assert outcome.state is State.SUCCESS, outcome.error
    sent = script.requests[0]
    assert [m["role"] for m in sent["messages"]] == ["system", "user", "assistant", "user"]
    assert (sent["temperature"], sent["max_tokens"], sent["seed"]) == (0.2, 64, 7)


def test_a_429_is_retried_after_its_retry_after_and_both_attempts_are_recorded(
    run_task: Runner, openai_wire: OpenAIWire, worker_engine: Engine, word: str
) -> None:
    openai_wire.script(word, Reply.failure(429, "rate limited", retry_after=0.4), Reply.text("fine"))
    execution_id = new_id()
    started = time.monotonic()

    outcome = run_task(_chat(openai_wire, f"    prompt: {word}"), "t", execution_id=execution_id)

    assert outcome.state is State.SUCCESS, outcome.error
    assert time.monotonic() - started >= 0.4
    first, second = _calls(worker_engine, execution_id)
    assert first.error is not None and "HTTP 429" in first.error and first.response is None
    assert second.error is None and second.response is not None


def test_server_errors_exhaust_the_in_call_attempts_and_fail_retryable(
    run_task: Runner, openai_wire: OpenAIWire, worker_engine: Engine, word: str
) -> None:
    script = openai_wire.script(word, Reply.failure(500, "upstream down"))
    execution_id = new_id()

    outcome = run_task(_chat(openai_wire, f"    prompt: {word}"), "t", execution_id=execution_id)

    assert outcome.state is State.FAILED and outcome.retryable is True
    assert outcome.error is not None and "HTTP 500" in outcome.error and "upstream down" in outcome.error
    assert len(script.requests) == worker_engine.settings.llm.max_attempts
    assert all(c.error for c in _calls(worker_engine, execution_id))


def test_a_client_error_is_not_retried(run_task: Runner, openai_wire: OpenAIWire, word: str) -> None:
    script = openai_wire.script(word, Reply.failure(400, "context too long"))

    outcome = run_task(_chat(openai_wire, f"    prompt: {word}"), "t")

    assert outcome.state is State.FAILED and outcome.retryable is False
    assert len(script.requests) == 1


def test_a_wrong_api_key_fails_without_retry(run_task: Runner, openai_wire: OpenAIWire, word: str) -> None:
    source = _chat(openai_wire, f"    prompt: {word}").replace(DEFAULT_API_KEY, "sk-wrong")

    outcome = run_task(source, "t")

    assert outcome.state is State.FAILED and outcome.retryable is False
    assert outcome.error is not None and "HTTP 401" in outcome.error


def test_a_retry_after_over_the_in_call_limit_fails_retryable_at_once(
    run_task: Runner, openai_wire: OpenAIWire, word: str
) -> None:
    script = openai_wire.script(word, Reply.failure(429, "quota", retry_after=3600))

    outcome = run_task(_chat(openai_wire, f"    prompt: {word}"), "t")

    assert outcome.state is State.FAILED and outcome.retryable is True
    assert outcome.error is not None and "Retry-After 3600s" in outcome.error
    assert len(script.requests) == 1


def test_a_slow_endpoint_times_out_as_retryable(run_task: Runner, openai_wire: OpenAIWire, word: str) -> None:
    openai_wire.script(word, Reply.slow(2.0))
    source = _chat(openai_wire, f"    prompt: {word}\n    timeout: PT0.3S")

    outcome = run_task(source, "t")

    assert outcome.state is State.FAILED and outcome.retryable is True
    # Either the call's own timeout or, once the client's retries outlast it, the task's `timeout`.
    assert outcome.error is not None and ("timed out" in outcome.error or "Timeout after" in outcome.error)


_SCHEMA = (
    "    jsonResponseSchema:\n      type: object\n      required: [sentiment]\n"
    "      properties:\n        sentiment:\n          enum: [POSITIVE, NEGATIVE, NEUTRAL]\n"
)


def test_structured_output_is_requested_validated_and_parsed(
    run_task: Runner, openai_wire: OpenAIWire, word: str
) -> None:
    script = openai_wire.script(word, Reply.text('{"sentiment": "NEGATIVE"}'))

    outcome = run_task(_chat(openai_wire, f"    prompt: {word}\n{_SCHEMA}"), "t")

    assert outcome.state is State.SUCCESS, outcome.error
    assert outcome.outputs is not None
    assert outcome.outputs["choices"][0]["message"]["parsed"] == {"sentiment": "NEGATIVE"}
    response_format = script.requests[0]["response_format"]
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["schema"]["required"] == ["sentiment"]


@pytest.mark.parametrize(
    ("content", "problem"),
    [("not json at all", "is not JSON"), ('{"sentiment": "ANGRY"}', "does not match jsonResponseSchema")],
)
def test_malformed_structured_output_fails_and_is_recorded_as_failed(
    run_task: Runner, openai_wire: OpenAIWire, worker_engine: Engine, word: str, content: str, problem: str
) -> None:
    openai_wire.script(word, Reply.text(content))
    execution_id = new_id()

    outcome = run_task(_chat(openai_wire, f"    prompt: {word}\n{_SCHEMA}"), "t", execution_id=execution_id)

    assert outcome.state is State.FAILED
    assert outcome.error is not None and problem in outcome.error
    [call] = _calls(worker_engine, execution_id)
    assert call.error is not None and problem in call.error and call.tokens_out > 0


def test_an_invalid_schema_is_refused_before_any_call(run_task: Runner, openai_wire: OpenAIWire, word: str) -> None:
    script = openai_wire.script(word, Reply.text("{}"))

    outcome = run_task(_chat(openai_wire, f"    prompt: {word}\n    jsonResponseSchema:\n      type: 12"), "t")

    assert outcome.state is State.FAILED and outcome.retryable is False
    assert outcome.error is not None and "not a valid JSON schema" in outcome.error
    assert script.requests == []


def test_a_rerun_attempt_reuses_the_recorded_answer_without_calling_the_model(
    run_task: Runner, openai_wire: OpenAIWire, worker_engine: Engine, word: str
) -> None:
    script = openai_wire.script(word, Reply.text("first answer"), Reply.text("a different answer"))
    execution_id = new_id()
    source = _chat(openai_wire, f"    prompt: {word}")

    first = run_task(source, "t", execution_id=execution_id, attempt=1)
    second = run_task(source, "t", execution_id=execution_id, attempt=2)

    assert first.outputs is not None and second.outputs is not None
    assert second.outputs["choices"][0]["message"]["content"] == "first answer"
    assert len(script.requests) == 1
    assert len(_calls(worker_engine, execution_id)) == 1
    actions = [a for a, _ in _audit(worker_engine, execution_id)]
    assert actions.count("llm.call") == 1 and actions.count("llm.replayed") == 1


def test_a_token_budget_overrun_fails_the_run_and_blocks_further_calls(
    run_task: Runner, openai_wire: OpenAIWire, worker_engine: Engine, word: str
) -> None:
    script = openai_wire.script(word, Reply.text("long answer", tokens_in=80, tokens_out=40))
    execution_id = new_id()
    source = _chat(openai_wire, f"    prompt: {word}\n    budget:\n      maxTokens: 100")

    first = run_task(source, "t", execution_id=execution_id, attempt=1)
    # A different request (no replay) in a new attempt of the same task run: refused before calling.
    second = run_task(source.replace(word, f"{word} again"), "t", execution_id=execution_id, attempt=2)

    assert first.state is State.FAILED and first.retryable is False
    assert first.error is not None and "budget exceeded" in first.error and "120 tokens (max 100)" in first.error
    assert second.state is State.FAILED and "budget exceeded" in (second.error or "")
    assert len(script.requests) == 1


def test_an_execution_budget_counts_every_task_of_the_execution(
    run_task: Runner, openai_wire: OpenAIWire, word: str
) -> None:
    script = openai_wire.script(word, Reply.text("x", tokens_in=10, tokens_out=0))
    execution_id = new_id()
    budget = "    budget:\n      maxTokens: 10\n      scope: EXECUTION"

    first = run_task(_chat(openai_wire, f"    prompt: {word}\n{budget}"), "t", execution_id=execution_id)
    second = run_task(
        _chat(openai_wire, f"    prompt: {word} b\n{budget}", task_id="u"), "u", execution_id=execution_id
    )

    assert first.state is State.SUCCESS, first.error
    assert second.state is State.FAILED and "for this execution: 10 tokens (max 10)" in (second.error or "")
    assert len(script.requests) == 1


def test_a_cost_budget_is_checked_against_the_price_table(run_task: Runner, openai_wire: OpenAIWire, word: str) -> None:
    openai_wire.script(word, Reply.text("x", tokens_in=1_000_000, tokens_out=0))

    outcome = run_task(_chat(openai_wire, f"    prompt: {word}\n    budget:\n      maxCost: 0.1"), "t")

    assert outcome.state is State.FAILED and outcome.retryable is False
    assert outcome.error is not None and "$0.150000 (max 0.1)" in outcome.error


def test_the_api_key_may_come_from_a_secret_and_never_reaches_the_ledger(
    run_task: Runner, openai_wire: OpenAIWire, worker_engine: Engine, secrets: SetSecrets, word: str
) -> None:
    secrets(OPENAI_API_KEY=DEFAULT_API_KEY)
    openai_wire.script(word, Reply.text("ok"))
    execution_id = new_id()
    source = _chat(openai_wire, f"    prompt: {word}").replace(DEFAULT_API_KEY, "\"{{ secret('OPENAI_API_KEY') }}\"")

    outcome = run_task(source, "t", execution_id=execution_id)

    assert outcome.state is State.SUCCESS, outcome.error
    [call] = _calls(worker_engine, execution_id)
    assert DEFAULT_API_KEY not in str(call.request) and DEFAULT_API_KEY not in str(_audit(worker_engine, execution_id))


def test_a_rerun_of_a_run_that_overran_its_budget_fails_again_without_calling(
    run_task: Runner, openai_wire: OpenAIWire, worker_engine: Engine, word: str
) -> None:
    script = openai_wire.script(word, Reply.text("long answer", tokens_in=900, tokens_out=85))
    execution_id = new_id()
    source = _chat(openai_wire, f"    prompt: {word}\n    budget:\n      maxTokens: 800")

    first = run_task(source, "t", execution_id=execution_id, attempt=1)
    # The same request in the next attempt (a restart): its recorded answer is reused, the budget still holds.
    second = run_task(source, "t", execution_id=execution_id, attempt=2)

    assert first.state is State.FAILED and "985 tokens (max 800)" in (first.error or "")
    assert second.state is State.FAILED and second.retryable is False
    assert "985 tokens (max 800)" in (second.error or "")
    assert len(script.requests) == 1
    actions = [a for a, _ in _audit(worker_engine, execution_id)]
    assert actions.count("llm.call") == 1 and actions.count("llm.replayed") == 1


@pytest.mark.parametrize(
    ("budget", "message"),
    [
        ("maxTokens: 100\n      onExceed: PAUSE", "budget.onExceed: PAUSE is for AIAgent"),
        ("maxTokens: 100\n      onExceed: WAIT", "budget.onExceed must be FAIL or PAUSE, got WAIT"),
    ],
)
def test_a_chat_completion_budget_that_cannot_apply_fails_before_any_call(
    run_task: Runner, openai_wire: OpenAIWire, word: str, budget: str, message: str
) -> None:
    script = openai_wire.script(word, Reply.text("ok"))

    outcome = run_task(_chat(openai_wire, f"    prompt: {word}\n    budget:\n      {budget}"), "t")

    assert outcome.state is State.FAILED and outcome.retryable is False
    assert message in (outcome.error or "")
    assert script.requests == []
