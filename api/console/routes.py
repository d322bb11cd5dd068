"""The console's own endpoints: log in and out (session cookie), who am I with what grants, and the page itself."""

from __future__ import annotations

import functools
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.console.session import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    SESSION_TOKEN_NAME,
    CookieSession,
)
from api.deps import accounts, client_address, settings
from api.login_throttle import LoginThrottle
from api.permissions import ROLE_PERMISSIONS
from orchestrator.engine.accounts import ANONYMOUS_ADMIN, Principal

STATIC_DIR = Path(__file__).parent / "static"
SESSION_TTL = timedelta(hours=12)

router = APIRouter(tags=["Console"], include_in_schema=False)


class LoginRequest(BaseModel):
    """Either a username and password, or an API token."""

    username: str | None = Field(default=None, max_length=256)
    password: str | None = Field(default=None, max_length=1024)
    token: str | None = Field(default=None, max_length=512)


def _error(status: int, path: str, message: str) -> JSONResponse:
    body = {
        "message": message,
        "_embedded": {"errors": [{"path": path, "line": None, "column": None, "message": message}]},
    }
    return JSONResponse(body, status_code=status)


def _principal(request: Request) -> Principal | None:
    if not settings(request).auth_required:
        return ANONYMOUS_ADMIN
    return getattr(request.state, "principal", None)


def _same_origin(request: Request) -> bool:
    """Login has no session to carry a CSRF token: a browser's Origin must be this server's (login CSRF)."""
    origin = request.headers.get("origin")
    return origin is None or origin.rstrip("/") == f"{request.url.scheme}://{request.url.netloc}"


def _session_body(request: Request, principal: Principal, session: CookieSession | None) -> dict[str, Any]:
    grants: dict[str, set[str]] = {}
    for binding in principal.bindings:
        grants.setdefault(binding.namespace_prefix, set()).update(ROLE_PERMISSIONS.get(binding.role, frozenset()))
    return {
        "authRequired": settings(request).auth_required,
        "authenticated": True,
        "actor": principal.actor,
        "username": principal.username,
        "roles": [{"role": b.role, "namespace": b.namespace_prefix} for b in principal.bindings],
        # The page hides what the role cannot do; the API refuses it anyway.
        "grants": [{"namespace": ns, "permissions": sorted(perms)} for ns, perms in sorted(grants.items())],
        "csrfToken": session.csrf_token if session else None,
    }


def _set_cookies(request: Request, response: Response, session: CookieSession) -> None:
    # Behind a TLS-terminating proxy the scheme is https only if the proxy is trusted (`api.proxies`);
    # CHORUS_COOKIE_SECURE forces it either way.
    configured = settings(request).cookie_secure
    secure = configured if configured is not None else request.url.scheme == "https"
    max_age = int(SESSION_TTL.total_seconds())
    response.set_cookie(
        SESSION_COOKIE,
        session.cookie_value(),
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="strict",
        secure=secure,
    )
    # Readable by the page's script on purpose: it is echoed in the X-CSRF-Token header (double submit).
    response.set_cookie(
        CSRF_COOKIE, session.csrf_token, max_age=max_age, path="/", httponly=False, samesite="strict", secure=secure
    )


@router.get("/ui/session")
def who_am_i(request: Request) -> JSONResponse:
    """The signed-in user, their grants per namespace prefix and the CSRF token; 401 without a session."""
    principal = _principal(request)
    if principal is None:
        body = {"authRequired": True, "authenticated": False}
        return JSONResponse(body, status_code=401)
    return JSONResponse(_session_body(request, principal, getattr(request.state, "console_session", None)))


@router.post("/ui/login")
async def login(request: Request, body: LoginRequest) -> Response:
    """Check a password (or an API token) and start a session: 401 on bad credentials, never a Basic dialog."""
    if not _same_origin(request):
        return _error(403, "header.origin", "login from another origin refused")
    if not settings(request).auth_required:
        return JSONResponse(_session_body(request, ANONYMOUS_ADMIN, None))
    accts = accounts(request)
    # The same lockout as the API's Basic and Bearer credentials: this is one more door to the same accounts.
    throttle: LoginThrottle = request.app.state.login_throttle
    address = client_address(request)
    if body.token:
        throttle.check(None, address)
        principal = await run_in_threadpool(accts.authenticate_bearer, body.token)
        if principal is None:
            throttle.failed(None, address)
            return _error(401, "token", "invalid or expired API token")
        session = CookieSession("t", body.token)
    elif body.username and body.password:
        who = f"user:{body.username}"
        throttle.check(who, address)
        principal = await run_in_threadpool(accts.authenticate_basic, body.username, body.password)
        if principal is None or principal.username is None:
            throttle.failed(who, address)
            return _error(401, "password", "wrong username or password")
        throttle.succeeded(who, address)
        username = principal.username
        new = await run_in_threadpool(
            lambda: accts.create_token(
                username,
                SESSION_TOKEN_NAME,
                expires_in=SESSION_TTL,
                actor=f"user:{username}",
                client=client_address(request),
            )
        )
        session = CookieSession("s", new.secret)
        principal = await run_in_threadpool(accts.authenticate_bearer, new.secret)
        assert principal is not None
    else:
        return _error(422, "username", "send a username and password, or a token")
    response = JSONResponse(_session_body(request, principal, session))
    _set_cookies(request, response, session)
    return response


@router.post("/ui/logout", status_code=204)
async def logout(request: Request) -> Response:
    """End the session: a console session token is revoked, the cookies are cleared."""
    session: CookieSession | None = getattr(request.state, "console_session", None)
    principal: Principal | None = getattr(request.state, "principal", None)
    if session is not None and session.kind == "s" and principal is not None and principal.token_id:
        token_id = principal.token_id
        await run_in_threadpool(
            lambda: accounts(request).revoke_token(token_id, actor=principal.actor, client=client_address(request))
        )
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    response.delete_cookie(CSRF_COOKIE, path="/", samesite="strict")
    return response


@router.get("/ui")
@router.get("/ui/{page:path}")
def page(page: str = "") -> HTMLResponse:
    """Every console URL is the one page; its script routes (Kestra's `/ui/main/executions/...` links too)."""
    # A fresh nonce per page: the flow editor (CodeMirror) writes its stylesheet in a <style> element, which
    # the policy admits only with this nonce; no other inline style or script is allowed.
    nonce = secrets.token_urlsafe(16)
    html = _index_html().replace('name="csp-nonce" content=""', f'name="csp-nonce" content="{nonce}"', 1)
    policy = f"{CONTENT_SECURITY_POLICY}; style-src 'self' 'nonce-{nonce}'"
    return HTMLResponse(html, headers={**PAGE_HEADERS, "Content-Security-Policy": policy})


@functools.cache
def _index_html() -> str:
    return (STATIC_DIR / "index.html").read_text(encoding="utf-8")


#: The page loads only its own files (no inline script, no CDN), and is never framed.
CONTENT_SECURITY_POLICY = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'"
PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",  # frame-ancestors' twin for browsers that ignore CSP
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
