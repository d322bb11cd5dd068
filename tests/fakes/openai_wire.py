"""A server speaking OpenAI's chat-completions wire protocol, answering from per-test scripts.

One server serves a whole test session; each test scripts its own replies under a `match` text that
appears in its request's messages (a unique word, the feedback text...), so concurrent tests never
consume each other's replies. Replies are consumed in order and the last one repeats.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.base import FakeResponse, FakeServer, RecordedRequest, sse

DEFAULT_API_KEY = "sk-test-chorus"


@dataclass(frozen=True)
class Reply:
    """One scripted answer: assistant content and/or tool calls, or an HTTP error."""

    content: str | None = None
    tool_calls: tuple[dict[str, Any], ...] = ()
    finish_reason: str | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    status: int = 200
    error: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0

    @classmethod
    def text(cls, content: str, *, tokens_in: int | None = None, tokens_out: int | None = None) -> Reply:
        return cls(content=content, tokens_in=tokens_in, tokens_out=tokens_out)

    @classmethod
    def tool_call(cls, name: str, arguments: dict[str, Any], call_id: str = "call_1") -> Reply:
        call = {"id": call_id, "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}
        return cls(tool_calls=(call,), finish_reason="tool_calls")

    @classmethod
    def tool_calls_of(
        cls,
        *calls: tuple[str, dict[str, Any]],
        content: str | None = None,
        tokens_in: int | None = None,
        tokens_out: int | None = None,
        id_prefix: str = "call",
    ) -> Reply:
        """An assistant turn asking for several function calls at once (ids `call_1`, `call_2`...)."""
        made = tuple(
            {"id": f"{id_prefix}_{i}", "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}
            for i, (name, args) in enumerate(calls, 1)
        )
        return cls(
            content=content, tool_calls=made, finish_reason="tool_calls", tokens_in=tokens_in, tokens_out=tokens_out
        )

    @classmethod
    def failure(cls, status: int, message: str = "scripted failure", *, retry_after: float | None = None) -> Reply:
        headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
        return cls(status=status, error=message, headers=headers)

    @classmethod
    def slow(cls, delay_s: float, content: str = "late") -> Reply:
        return cls(content=content, delay_s=delay_s)


@dataclass
class Script:
    """The replies for requests whose messages contain `match`, and the requests it answered."""

    match: str
    replies: list[Reply]
    requests: list[dict[str, Any]] = field(default_factory=list)
    _served: int = 0

    def next_reply(self) -> Reply:
        reply = self.replies[min(self._served, len(self.replies) - 1)]
        self._served += 1
        return reply


def _words(text: str) -> int:
    return len(text.split())


def _message_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):  # content parts
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return str(content or "")


class OpenAIWire(FakeServer):
    """POST /v1/chat/completions (and /chat/completions), Bearer-key checked, answered from scripts."""

    def __init__(self, api_key: str = DEFAULT_API_KEY) -> None:
        super().__init__()
        self.api_key = api_key
        self._scripts: list[Script] = []
        self._scripts_lock = threading.Lock()
        self._ids = itertools.count(1)

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def script(self, match: str, *replies: Reply) -> Script:
        """Answer requests mentioning `match` with `replies`, in order (the last one repeats)."""
        assert replies, "a script needs at least one reply"
        script = Script(match, list(replies))
        with self._scripts_lock:
            self._scripts.insert(0, script)  # the newest script wins over an older one with the same match
        return script

    def respond(self, request: RecordedRequest) -> FakeResponse:
        if request.method != "POST" or not request.path.rstrip("/").endswith("/chat/completions"):
            return _error(404, f"no route {request.method} {request.path}", "invalid_request_error")
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return _error(401, "Incorrect API key provided", "invalid_request_error")
        try:
            body = request.json()
        except ValueError:
            return _error(400, "body is not JSON", "invalid_request_error")
        if not body.get("model") or not isinstance(body.get("messages"), list):
            return _error(400, "model and messages are required", "invalid_request_error")
        with self._scripts_lock:
            script = self._script_for_locked(body)
            if script is None:
                return _error(400, "no scripted reply matches this request", "invalid_request_error")
            script.requests.append(body)
            reply = script.next_reply()
        if reply.status != 200:
            kind = "rate_limit_error" if reply.status == 429 else "server_error"
            response = _error(reply.status, reply.error or "error", kind, reply.headers)
            return FakeResponse(response.status, response.body, response.headers, delay_s=reply.delay_s)
        return self._completion(body, reply)

    def _script_for_locked(self, body: dict[str, Any]) -> Script | None:
        text = "\n".join(_message_text(m) for m in body.get("messages", []) if isinstance(m, dict))
        return next((s for s in self._scripts if s.match in text), None)

    def _completion(self, body: dict[str, Any], reply: Reply) -> FakeResponse:
        prompt = " ".join(_message_text(m) for m in body["messages"] if isinstance(m, dict))
        tokens_in = reply.tokens_in if reply.tokens_in is not None else max(1, _words(prompt))
        tokens_out = reply.tokens_out if reply.tokens_out is not None else max(1, _words(reply.content or "x"))
        usage = {"prompt_tokens": tokens_in, "completion_tokens": tokens_out, "total_tokens": tokens_in + tokens_out}
        finish = reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")
        completion_id, created = f"chatcmpl-fake{next(self._ids)}", int(time.time())
        message: dict[str, Any] = {"role": "assistant", "content": reply.content}
        if reply.tool_calls:
            message["tool_calls"] = list(reply.tool_calls)
        if body.get("stream"):
            return FakeResponse(
                200,
                headers={"Content-Type": "text/event-stream"},
                chunks=sse(_stream_events(completion_id, created, body["model"], message, finish, usage, body)),
                delay_s=reply.delay_s,
            )
        return FakeResponse(
            200,
            json.dumps(
                {
                    "id": completion_id,
                    "object": "chat.completion",
                    "created": created,
                    "model": body["model"],
                    "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
                    "usage": usage,
                    "system_fingerprint": "fp_chorus_fake",
                }
            ).encode(),
            {"Content-Type": "application/json"},
            delay_s=reply.delay_s,
        )


def _stream_events(
    completion_id: str,
    created: int,
    model: str,
    message: dict[str, Any],
    finish: str,
    usage: dict[str, int],
    body: dict[str, Any],
) -> list[dict[str, Any]]:
    def chunk(delta: dict[str, Any], finish_reason: str | None) -> dict[str, Any]:
        return {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        }

    events = [chunk({"role": "assistant", "content": ""}, None)]
    content = message.get("content") or ""
    events += [chunk({"content": word}, None) for word in _pieces(content)]
    events.append(chunk({}, finish))
    if (body.get("stream_options") or {}).get("include_usage"):
        events.append({**chunk({}, None), "choices": [], "usage": usage})
    return events


def _pieces(content: str, size: int = 8) -> list[str]:
    return [content[i : i + size] for i in range(0, len(content), size)]


def _error(status: int, message: str, kind: str, headers: dict[str, str] | None = None) -> FakeResponse:
    error = {"message": message, "type": kind, "param": None, "code": None}
    return FakeResponse.of_json({"error": error}, status, headers)
