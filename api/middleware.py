"""ASGI middleware: request limits (body size, NUL bytes) and the audit record of every API action.

The audit record is written when the response starts, so a denied or failed attempt is in the trail
before the caller sees the answer. Successful changes whose operation audited itself in its own
transaction (flows, KV, executions, accounts) are not recorded twice.
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import unquote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.deps import AuditNote, api_action
from api.errors import PayloadTooLarge
from orchestrator.engine.audit_trail import record_alone

logger = logging.getLogger(__name__)

_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _json_error(path: str, status: int, message: str, field: str) -> list[Message]:
    body = {
        "message": message,
        "_links": {"self": {"href": path, "templated": False}},
        "_embedded": {"errors": [{"path": field, "line": None, "column": None, "message": message}]},
    }
    raw = json.dumps(body).encode("utf-8")
    return [
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())],
        },
        {"type": "http.response.body", "body": raw},
    ]


class LimitsMiddleware:
    """Refuses bodies over `max_body_bytes` with a JSON 413, and NUL bytes in the URL with a JSON 422."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(scope)
        if refusal is not None:
            for message in _json_error(scope["path"], *refusal):
                await send(message)
            return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body_bytes:
                    raise PayloadTooLarge(self.max_body_bytes)
            return message

        await self.app(scope, limited_receive, send)

    def _refusal(self, scope: Scope) -> tuple[int, str, str] | None:
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.max_body_bytes
                except ValueError:
                    return 400, "Content-Length is not a number", "header.content-length"
                if too_big:
                    return 413, str(PayloadTooLarge(self.max_body_bytes)), "body"
        if "\x00" in scope["path"]:
            return 422, "Invalid entity: the path contains a NUL character", "path"
        if "\x00" in unquote(scope.get("query_string", b"").decode("latin-1")):
            return 422, "Invalid entity: the query string contains a NUL character", "query"
        return None


class AuditMiddleware:
    """Records writes (whatever their outcome) and every denied request, reads included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        recorded = False

        async def audited_send(message: Message) -> None:
            nonlocal recorded
            if message["type"] == "http.response.start" and not recorded:
                recorded = True
                await self._record(scope, int(message["status"]))
            await send(message)

        try:
            await self.app(scope, receive, audited_send)
        except Exception:
            if not recorded:
                recorded = True
                await self._record(scope, 500)
            raise

    async def _record(self, scope: Scope, status: int) -> None:
        request = Request(scope)
        entry: AuditNote | None = getattr(request.state, "audit_note", None)
        hidden = bool(getattr(request.state, "hidden", False))
        denied = status in (401, 403) or (status == 404 and hidden)
        if entry is None:
            if not denied and not (request.method in _WRITES and scope["path"].startswith("/api/")):
                return
            entry = AuditNote(action=f"http.{request.method.lower()}", subject=scope["path"][:600])
        if not denied and (entry.read_only or (entry.audited and status < 400)):
            return
        outcome = "denied" if denied else ("success" if status < 400 else "failed")
        event = api_action(request, entry, status=status, outcome=outcome)
        engine: Any = scope["app"].state.engine
        try:
            await run_in_threadpool(record_alone, engine.sessions, engine.settings.tenant, event)
        except Exception:
            logger.critical("could not record audit event %s", event, exc_info=True)
