"""Console sessions: an HttpOnly cookie that authenticates like a Bearer token, guarded by a CSRF header.

A session *is* an API token of the user (named `console`, 12 hours), so expiry, revocation, hashing at
rest and the audit of its creation are the accounts' own; logging out revokes it. The cookie holds
`s:<secret>` for such a session, or `t:<secret>` when the user logged in with an API token of their
own (logging out then only forgets it).

CSRF: SameSite=Strict already keeps the cookie off cross-site requests; on top of it, every
state-changing request authenticated by the cookie must carry `X-CSRF-Token`, the HMAC of the
session secret, which the page reads from the `chorus_csrf` cookie (double submit). An attacker who
can plant cookies still cannot compute it without the HttpOnly secret. Requests with an
`Authorization` header ignore the cookie: API clients are unaffected.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.login_throttle import TooManyAttempts

SESSION_COOKIE = "chorus_session"
CSRF_COOKIE = "chorus_csrf"
CSRF_HEADER = "x-csrf-token"
#: Sent by the console's fetches: 401s then drop `WWW-Authenticate`, so the browser shows no Basic dialog.
CONSOLE_HEADER = "x-chorus-console"
SESSION_TOKEN_NAME = "console"
_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})
#: Where the cookie needs no CSRF header: logging in has no session yet (it is checked by Origin instead).
_CSRF_EXEMPT = frozenset({"/ui/login"})


@dataclass(frozen=True)
class CookieSession:
    """What the session cookie holds."""

    kind: str  #: "s": a console session token (revoked at logout); "t": the user's own API token
    secret: str

    @classmethod
    def parse(cls, raw: str | None) -> CookieSession | None:
        if not raw or raw[1:2] != ":" or raw[0] not in "st" or len(raw) > 512:
            return None
        return cls(raw[0], raw[2:])

    def cookie_value(self) -> str:
        return f"{self.kind}:{self.secret}"

    @property
    def csrf_token(self) -> str:
        return csrf_token(self.secret)


def csrf_token(secret: str) -> str:
    return hmac.new(secret.encode("utf-8"), b"chorus-console-csrf", hashlib.sha256).hexdigest()


def request_cookies(scope: Scope) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    for name, value in scope.get("headers", ()):
        if name == b"cookie":
            try:
                jar.load(value.decode("latin-1"))
            except CookieError:  # a malformed Cookie header is the browser's problem, not a 500
                continue
    return {key: morsel.value for key, morsel in jar.items()}


def _header(scope: Scope, wanted: bytes) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == wanted:
            return str(value.decode("latin-1"))
    return None


def _refusal(status: int, path: str, message: str, extra: Sequence[tuple[bytes, str]] = ()) -> list[Message]:
    body = {
        "message": message,
        "_embedded": {"errors": [{"path": path, "line": None, "column": None, "message": message}]},
    }
    raw = json.dumps(body).encode("utf-8")
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
    return [
        {"type": "http.response.start", "status": status, "headers": headers + [(k, v.encode()) for k, v in extra]},
        {"type": "http.response.body", "body": raw},
    ]


class ConsoleSessionMiddleware:
    """Turns a valid session cookie into the request's principal (which `api.deps.authenticate` reuses)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if _header(scope, CONSOLE_HEADER.encode()) is not None:
            send = _without_basic_challenge(send)
        if scope["path"] == "/ui" or scope["path"].startswith("/ui/"):
            send = _never_framed(send)
        session = CookieSession.parse(request_cookies(scope).get(SESSION_COOKIE))
        if session is None or _header(scope, b"authorization") is not None or not _needs_principal(scope["path"]):
            await self.app(scope, receive, send)
            return
        state: dict[str, Any] = scope.setdefault("state", {})
        if scope["method"] not in _SAFE and scope["path"] not in _CSRF_EXEMPT:
            sent = _header(scope, CSRF_HEADER.encode()) or ""
            if not hmac.compare_digest(sent.encode(), session.csrf_token.encode()):
                message = "CSRF token missing or wrong: send the X-CSRF-Token header with the chorus_csrf cookie"
                for part in _refusal(403, "header.x-csrf-token", message):
                    await send(part)
                return
        # A cookie is one more place to guess tokens in: the same per-address throttle as a Bearer header.
        throttle = scope["app"].state.login_throttle
        address = scope["client"][0] if scope.get("client") else "unknown"
        try:
            throttle.check(None, address)
        except TooManyAttempts as e:
            for part in _refusal(429, "cookie.chorus_session", e.message, [(b"retry-after", str(e.retry_after_s))]):
                await send(part)
            return
        accounts = scope["app"].state.accounts
        principal = await run_in_threadpool(accounts.authenticate_bearer, session.secret)
        if principal is not None:
            state["principal"] = principal
            state["console_session"] = session
        else:
            throttle.failed(None, address)
        await self.app(scope, receive, send)


def _needs_principal(path: str) -> bool:
    """The API and the console's endpoints; the static assets and /health need no database look-up."""
    return path.startswith(("/api/", "/ui/", "/metrics")) and not path.startswith("/ui/static/")


#: Every console response, JSON and assets included, refuses to be framed (clickjacking); the page adds its CSP.
_FRAMING = ((b"x-frame-options", b"DENY"), (b"content-security-policy", b"frame-ancestors 'none'"))


def _never_framed(send: Send) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            present = {k.lower() for k, _ in message.get("headers", ())}
            extra = [(k, v) for k, v in _FRAMING if k not in present]
            message = {**message, "headers": [*message.get("headers", ()), *extra]}
        await send(message)

    return wrapped


def _without_basic_challenge(send: Send) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start" and message["status"] == 401:
            headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() != b"www-authenticate"]
            message = {**message, "headers": headers}
        await send(message)

    return wrapped
