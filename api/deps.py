"""FastAPI dependencies: engine and sessions from the app state, tenant check, the authenticated principal.

Routers require `authenticate` as a router-level dependency, so a route cannot forget it; routes that
Kestra leaves open (health, webhooks, version) live on routers without it. The `{tenant}` path segment is
checked once, by `check_tenant_path` on every router included under `/api/v1/{tenant}` (`api.wiring`); a
handler asks for `TenantDep` only when it uses the tenant. Handlers take the `...Dep` aliases at the end of
this module (as FastAPI's full-stack template does), never `Depends(...)` defaults.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Request

from api.login_throttle import LoginThrottle
from api.submit_groups import SubmitGroups
from orchestrator.engine import Engine
from orchestrator.engine.accounts import ANONYMOUS_ADMIN, Accounts, Principal, Unauthenticated
from orchestrator.engine.audit_trail import ApiAction
from orchestrator.engine.kv import KeyValueStore
from orchestrator.settings import Settings
from orchestrator.store.database import Session, read_only


def engine(request: Request) -> Engine:
    return request.app.state.engine  # type: ignore[no-any-return]


def submit_groups(request: Request) -> SubmitGroups:
    return request.app.state.submit_groups  # type: ignore[no-any-return]


def accounts(request: Request) -> Accounts:
    return request.app.state.accounts  # type: ignore[no-any-return]


def kv_store(request: Request) -> KeyValueStore:
    return request.app.state.kv  # type: ignore[no-any-return]


def settings(request: Request) -> Settings:
    return request.app.state.engine.settings  # type: ignore[no-any-return]


def read_session(request: Request) -> Iterator[Session]:
    """A session for read queries; writes go through the engine, which owns its transactions."""
    with read_only(request.app.state.engine.sessions) as session:
        yield session


def check_tenant_path(
    tenant: str = Path(description="Always 'main' (Kestra OSS).", json_schema_extra={"enum": ["main"]}),
) -> str:
    """Router-level check of the `{tenant}` path segment."""
    if tenant != "main":
        raise HTTPException(status_code=400, detail="Tenant must be 'main' for OSS version")
    return tenant


def check_tenant(request: Request) -> str:
    """The tenant of this request: the path's (already checked) or `main` on the tenant-less aliases."""
    return str(request.path_params.get("tenant", "main"))


# ---- authentication -----------------------------------------------------------------------------


def client_address(request: Request) -> str:
    """The caller's address: the peer, or what a trusted proxy said it was (`api.proxies`)."""
    return request.client.host if request.client else "unknown"


def authenticate(request: Request) -> Principal:
    """The caller, from Basic or Bearer credentials; anonymous admin only when auth is not required."""
    cached = getattr(request.state, "principal", None)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    principal = _authenticate(request)
    request.state.principal = principal
    return principal


def _authenticate(request: Request) -> Principal:
    if not settings(request).auth_required:
        return ANONYMOUS_ADMIN
    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    credentials = credentials.strip()
    principal = None
    throttle: LoginThrottle = request.app.state.login_throttle
    address = client_address(request)
    who = None
    if scheme.lower() == "basic" and credentials:
        try:
            username, sep, password = base64.b64decode(credentials, validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise Unauthenticated("malformed Basic credentials") from None
        if sep:
            who = f"user:{username}"
            throttle.check(who, address)
            principal = accounts(request).authenticate_basic(username, password)
    elif scheme.lower() == "bearer" and credentials:
        # A token names no account: its guesses count against the address alone.
        throttle.check(None, address)
        principal = accounts(request).authenticate_bearer(credentials)
    elif not header:
        raise Unauthenticated("authentication required: send Basic credentials or a Bearer API token")
    if principal is None:
        throttle.failed(who, address)
        raise Unauthenticated("invalid credentials")
    throttle.succeeded(who, address)
    return principal


def actor(request: Request) -> str:
    """How engine audit events name the caller: the principal and where it called from."""
    return f"{authenticate(request).actor}@{client_address(request)}"


# ---- request audit context ----------------------------------------------------------------------


@dataclass
class AuditNote:
    """What a request is about, filled in by its route; the audit middleware records it at response time."""

    action: str
    namespace: str | None = None
    flow_id: str | None = None
    subject: str | None = None
    read_only: bool = False  #: a read: recorded only when denied
    audited: bool = False  #: the operation already wrote its event in its own transaction


def note(
    request: Request,
    action: str,
    *,
    namespace: str | None = None,
    flow_id: str | None = None,
    subject: str | None = None,
    read_only: bool = False,
) -> AuditNote:
    entry = AuditNote(action, namespace, flow_id, subject, read_only)
    request.state.audit_note = entry
    return entry


def api_action(request: Request, entry: AuditNote, *, status: int = 200, outcome: str = "success") -> ApiAction:
    principal = getattr(request.state, "principal", None)
    return ApiAction(
        actor=principal.actor if principal is not None else "anonymous",
        client=client_address(request),
        action=entry.action,
        outcome=outcome,
        status=status,
        namespace=entry.namespace,
        flow_id=entry.flow_id,
        subject=entry.subject,
        method=request.method,
        path=request.url.path,
    )


# ---- what handlers declare ----------------------------------------------------------------------

EngineDep = Annotated[Engine, Depends(engine)]
SubmitGroupsDep = Annotated[SubmitGroups, Depends(submit_groups)]  #: starts written in groups
AccountsDep = Annotated[Accounts, Depends(accounts)]
KvDep = Annotated[KeyValueStore, Depends(kv_store)]
SettingsDep = Annotated[Settings, Depends(settings)]
SessionDep = Annotated[Session, Depends(read_session)]  #: read-only; writes go through the engine
PrincipalDep = Annotated[Principal, Depends(authenticate)]
ActorDep = Annotated[str, Depends(actor)]  #: the caller as engine audit events name it
TenantDep = Annotated[str, Depends(check_tenant)]  #: `main`; already checked by the router
