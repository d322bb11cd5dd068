"""The fake protocol servers answer as the real services do, so tests of Chorus's tasks can trust them."""

from __future__ import annotations

import uuid

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.fakes.base import FakeResponse
from tests.fakes.jira import API_TOKEN, USERNAME, JiraServer
from tests.fakes.openai_wire import DEFAULT_API_KEY, OpenAIWire, Reply
from tests.fakes.webhook import WebhookReceiver


def _client(server: OpenAIWire) -> openai.OpenAI:
    return openai.OpenAI(api_key=DEFAULT_API_KEY, base_url=server.base_url, max_retries=0, timeout=5)


def test_the_openai_sdk_gets_the_scripted_reply_with_usage(openai_wire: OpenAIWire) -> None:
    word = uuid.uuid4().hex
    script = openai_wire.script(word, Reply.text("NEGATIVE", tokens_in=12, tokens_out=1))

    completion = _client(openai_wire).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": f"classify {word}"}]
    )

    assert completion.choices[0].message.content == "NEGATIVE"
    assert completion.usage is not None and completion.usage.total_tokens == 13
    assert script.requests[0]["model"] == "gpt-4o-mini"


def test_the_last_reply_repeats_once_the_script_is_consumed(openai_wire: OpenAIWire) -> None:
    word = uuid.uuid4().hex
    openai_wire.script(word, Reply.text("one"), Reply.text("two"))
    client = _client(openai_wire)
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": word}]
    replies = [client.chat.completions.create(model="m", messages=messages) for _ in range(3)]
    answers = [r.choices[0].message.content for r in replies]
    assert answers == ["one", "two", "two"]


def test_a_scripted_429_carries_retry_after(openai_wire: OpenAIWire) -> None:
    word = uuid.uuid4().hex
    openai_wire.script(word, Reply.failure(429, "slow down", retry_after=2))

    with pytest.raises(openai.RateLimitError) as caught:
        _client(openai_wire).chat.completions.create(model="m", messages=[{"role": "user", "content": word}])

    assert caught.value.response.headers["retry-after"] == "2"


def test_tool_calls_come_back_as_the_sdk_types(openai_wire: OpenAIWire) -> None:
    word = uuid.uuid4().hex
    openai_wire.script(word, Reply.tool_call("lookup", {"q": "x"}))

    message = (
        _client(openai_wire)
        .chat.completions.create(model="m", messages=[{"role": "user", "content": word}])
        .choices[0]
        .message
    )

    assert message.tool_calls is not None
    call = message.tool_calls[0]
    assert call.type == "function" and call.function.name == "lookup" and call.function.arguments == '{"q": "x"}'


def test_streaming_yields_the_content_in_chunks_and_usage_last(openai_wire: OpenAIWire) -> None:
    word = uuid.uuid4().hex
    openai_wire.script(word, Reply.text("a fairly long streamed answer"))

    stream = _client(openai_wire).chat.completions.create(
        model="m", messages=[{"role": "user", "content": word}], stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "a fairly long streamed answer"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 5


def test_a_wrong_api_key_is_refused(openai_wire: OpenAIWire) -> None:
    client = openai.OpenAI(api_key="wrong", base_url=openai_wire.base_url, max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])


def test_jira_creates_an_issue_with_basic_auth(jira_server: JiraServer) -> None:
    marker = uuid.uuid4().hex
    response = httpx.post(
        f"{jira_server.url}/rest/api/2/issue",
        auth=(USERNAME, API_TOKEN),
        json={"fields": {"project": {"key": "SUPPORT"}, "summary": "s", "description": marker}},
    )

    assert response.status_code == 201
    body = response.json()
    assert body["key"].startswith("SUPPORT-") and body["self"].endswith(f"/issue/{body['id']}")
    assert [i.key for i in jira_server.issues_mentioning(marker)] == [body["key"]]


def test_jira_refuses_bad_credentials(jira_server: JiraServer) -> None:
    response = httpx.post(
        f"{jira_server.url}/rest/api/2/issue", auth=(USERNAME, "nope"), json={"fields": {"project": {"key": "X"}}}
    )
    assert response.status_code == 401


def test_the_webhook_receiver_answers_scripted_statuses_in_order(webhook_receiver: WebhookReceiver) -> None:
    path = f"/hooks/{uuid.uuid4().hex}"
    url = webhook_receiver.script(path, FakeResponse.of_text("busy", 503), FakeResponse.of_text("ok"))

    assert [httpx.post(url, json={"n": n}).status_code for n in range(3)] == [503, 200, 200]
    assert [r.json() for r in webhook_receiver.received(path)] == [{"n": 0}, {"n": 1}, {"n": 2}]
