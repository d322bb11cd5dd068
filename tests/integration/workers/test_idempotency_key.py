"""The idempotency key of a logical task: the same on every attempt, seen by the receivers of its side effects
(HTTP Request's `Idempotency-Key` header, a script's CHORUS_IDEMPOTENCY_KEY, a model call's header)."""

from __future__ import annotations

import uuid

from orchestrator.core.ids import idempotency_key, new_id, task_run_id
from orchestrator.core.states import State
from tests.fakes.base import FakeResponse
from tests.fakes.openai_wire import DEFAULT_API_KEY, OpenAIWire, Reply
from tests.fakes.webhook import WebhookReceiver
from tests.integration.workers.conftest import Runner, one_task_flow


def test_an_http_request_sends_the_same_idempotency_key_on_every_attempt(
    run_task: Runner, webhook_receiver: WebhookReceiver
) -> None:
    path = f"/charge/{uuid.uuid4().hex}"
    url = webhook_receiver.script(path, FakeResponse.of_text("busy", 503), FakeResponse.of_text("ok"))
    source = one_task_flow(
        f"    type: io.kestra.plugin.core.http.Request\n    uri: {url}\n    method: POST\n    body: pay"
    )
    execution_id = new_id()

    first = run_task(source, "t", execution_id=execution_id, attempt=1)
    second = run_task(source, "t", execution_id=execution_id, attempt=2)

    assert first.state is State.FAILED and second.state is State.SUCCESS, second.error
    keys = [r.headers.get("idempotency-key") for r in webhook_receiver.received(path)]
    assert keys == [idempotency_key(task_run_id(execution_id, "t", None, None))] * 2


def test_a_get_request_carries_no_idempotency_key(run_task: Runner, webhook_receiver: WebhookReceiver) -> None:
    path = f"/read/{uuid.uuid4().hex}"
    url = webhook_receiver.script(path, FakeResponse.of_text("ok"))

    outcome = run_task(one_task_flow(f"    type: io.kestra.plugin.core.http.Request\n    uri: {url}"), "t")

    assert outcome.state is State.SUCCESS, outcome.error
    [request] = webhook_receiver.received(path)
    assert "idempotency-key" not in request.headers


def test_a_script_reads_the_same_key_in_its_environment_on_every_attempt(run_task: Runner) -> None:
    source = one_task_flow(
        '    type: io.kestra.plugin.scripts.shell.Commands\n    commands:\n      - echo "key=$CHORUS_IDEMPOTENCY_KEY"'
    )
    execution_id = new_id()

    runs = [run_task(source, "t", execution_id=execution_id, attempt=n) for n in (1, 2)]

    expected = f"key={idempotency_key(task_run_id(execution_id, 't', None, None))}"
    for outcome in runs:
        assert outcome.state is State.SUCCESS, outcome.error
        assert any(expected in record.message for record in outcome.logs), outcome.logs


def test_a_model_call_sends_one_key_per_request_the_same_on_a_retry(run_task: Runner, openai_wire: OpenAIWire) -> None:
    word = f"w{uuid.uuid4().hex}"
    openai_wire.script(word, Reply.failure(400, "bad"), Reply.text("ok"))
    source = one_task_flow(
        "    type: io.kestra.plugin.ai.openai.ChatCompletion\n"
        f"    apiKey: {DEFAULT_API_KEY}\n    baseUrl: {openai_wire.base_url}\n    model: gpt-4o-mini\n"
        f"    prompt: {word}"
    )
    other = source.replace(f"prompt: {word}", f"prompt: {word} other")
    execution_id = new_id()

    first = run_task(source, "t", execution_id=execution_id, attempt=1)
    second = run_task(source, "t", execution_id=execution_id, attempt=2)
    third = run_task(other, "t", execution_id=execution_id, attempt=3)

    assert first.state is State.FAILED and second.state is State.SUCCESS and third.state is State.SUCCESS
    sent = [r for r in openai_wire.received("/v1/chat/completions") if word in r.body.decode()]
    keys = [r.headers.get("idempotency-key") for r in sent]
    prefix = idempotency_key(task_run_id(execution_id, "t", None, None))
    assert len(keys) == 3 and all(k is not None and k.startswith(f"{prefix}-") for k in keys)
    assert keys[0] == keys[1] != keys[2]  # the same request again: the same key; another request: another
