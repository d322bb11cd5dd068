"""A real HTTP server on a free loopback port, in a thread, that records requests and answers from a handler.

Fakes subclass `FakeServer` and implement `respond(request) -> FakeResponse`. The stdlib threading server
is enough here (no event loop to share with the code under test) and speaks real HTTP, so clients under
test use their production transport. Each request gets its own thread: a slow scripted reply (timeout
tests) never blocks another test's request.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the fake received it."""

    method: str
    path: str
    headers: dict[str, str]  #: lower-cased names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class FakeResponse:
    """What the fake sends back: a body at once, or `chunks` written one by one (server-sent events)."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    chunks: tuple[bytes, ...] | None = None
    delay_s: float = 0.0  #: wait before answering (client timeout tests)

    @classmethod
    def of_json(cls, value: Any, status: int = 200, headers: dict[str, str] | None = None) -> FakeResponse:
        return cls(status, json.dumps(value).encode(), {"Content-Type": "application/json", **(headers or {})})

    @classmethod
    def of_text(cls, text: str, status: int = 200, headers: dict[str, str] | None = None) -> FakeResponse:
        return cls(status, text.encode(), {"Content-Type": "text/plain; charset=utf-8", **(headers or {})})


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.0: the connection closes after each response, so a streamed body needs no chunked framing.
    protocol_version = "HTTP/1.0"
    server: _Server

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        request = RecordedRequest(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        fake = self.server.fake
        with fake.lock:
            fake.requests.append(request)
        try:
            response = fake.respond(request)
        except Exception as e:  # a bug in a fake must show up in the test, not hang the client
            response = FakeResponse.of_json({"error": f"fake server error: {e!r}"}, 599)
        if response.delay_s:
            time.sleep(response.delay_s)
        try:
            self.send_response(response.status)
            for name, value in response.headers.items():
                self.send_header(name, value)
            if response.chunks is None:
                self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            for chunk in response.chunks if response.chunks is not None else (response.body,):
                self.wfile.write(chunk)
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (its timeout): nothing to answer

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean; requests are recorded instead


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fake: FakeServer) -> None:
        self.fake = fake
        super().__init__(("127.0.0.1", 0), _Handler)


class FakeServer:
    """Base of the fakes: start on a free port, record every request, answer with `respond`."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[RecordedRequest] = []
        self._server = _Server(self)
        self._thread = threading.Thread(target=self._server.serve_forever, name=type(self).__name__, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def respond(self, request: RecordedRequest) -> FakeResponse:
        raise NotImplementedError

    def received(self, path_prefix: str = "") -> list[RecordedRequest]:
        with self.lock:
            return [r for r in self.requests if r.path.startswith(path_prefix)]


def sse(events: Iterable[Any]) -> tuple[bytes, ...]:
    """Server-sent events framing of JSON payloads, ended by OpenAI's `[DONE]` marker."""

    def frames() -> Iterator[bytes]:
        for event in events:
            yield f"data: {json.dumps(event)}\n\n".encode()
        yield b"data: [DONE]\n\n"

    return tuple(frames())
