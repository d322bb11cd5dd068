"""Accounts over HTTP: who am I, API tokens (own, or anyone's for admins), users and their role bindings."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.deps import AccountsDep, PrincipalDep, authenticate, client_address, note, settings
from api.errors import QueryInvalid
from api.permissions import TENANT_WIDE, Permission, allowed, require
from orchestrator import store
from orchestrator.core.durations import format_duration, parse_duration
from orchestrator.engine.accounts import Binding, BindingInvalid, parse_binding
from orchestrator.store.tables import ApiTokenRow

router = APIRouter(tags=["Auth"], dependencies=[Depends(authenticate)])


class TokenCreate(BaseModel):
    name: str = Field(min_length=1, max_length=256, pattern=r"^[^\x00]*$")
    expiresIn: str | None = Field(default=None, max_length=64, description="ISO-8601 duration, e.g. P30D.")
    username: str | None = Field(default=None, max_length=256, description="Admins only: whose token.")


class RoleBindingCreate(BaseModel):
    role: str = Field(description="admin, developer, operator, approver or viewer")
    namespace: str = Field(default="", max_length=256, pattern=r"^[a-zA-Z0-9._-]*$", description="Prefix; '' for all.")


class UserCreate(BaseModel):
    username: str = Field(min_length=1, max_length=256, pattern=r"^[^\x00:]+$")
    password: str | None = Field(default=None, min_length=8, max_length=1024, pattern=r"^[^\x00]*$")
    roles: list[RoleBindingCreate] = Field(default_factory=list)


def _token_public(row: ApiTokenRow, username: str) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "username": username,
        "createdAt": store.iso(row.created_at),
        "expiresAt": store.iso(row.expires_at) if row.expires_at else None,
        "revokedAt": store.iso(row.revoked_at) if row.revoked_at else None,
        "lastUsedAt": store.iso(row.last_used_at) if row.last_used_at else None,
    }


@router.get("/me")
def me(
    principal: PrincipalDep,
) -> dict[str, Any]:
    return {
        "actor": principal.actor,
        "username": principal.username,
        "roles": [{"role": b.role, "namespace": b.namespace_prefix} for b in principal.bindings],
    }


@router.post("/tokens")
async def create_token(
    request: Request,
    body: TokenCreate,
    principal: PrincipalDep,
    accts: AccountsDep,
) -> dict[str, Any]:
    """A new bearer token, shown once in `token`; it acts with its user's role bindings."""
    entry = note(request, "token.create", subject=body.name)
    username = body.username or principal.username
    if username is None:
        raise QueryInvalid("username", "anonymous callers must name the token's user")
    if username != principal.username:
        require(principal, Permission.ACCOUNT_ADMIN, TENANT_WIDE)
    expires_in = _lifetime(request, body.expiresIn)
    new = await run_in_threadpool(
        lambda: accts.create_token(
            username, body.name, expires_in=expires_in, actor=principal.actor, client=client_address(request)
        )
    )
    entry.audited = True
    return {**_token_public(new.row, username), "token": new.secret}


@router.get("/tokens")
def list_tokens(
    principal: PrincipalDep,
    accts: AccountsDep,
    all: bool = False,
) -> list[dict[str, Any]]:
    """The caller's tokens (never their secrets); `all=true` lists everyone's, for admins."""
    if all or principal.username is None:
        require(principal, Permission.ACCOUNT_ADMIN, TENANT_WIDE)
        return [_token_public(t, u) for t, u in accts.list_tokens()]
    return [_token_public(t, u) for t, u in accts.list_tokens(principal.username)]


@router.delete("/tokens/{token_id}", status_code=204)
def revoke_token(
    request: Request,
    token_id: str,
    principal: PrincipalDep,
    accts: AccountsDep,
) -> Response:
    entry = note(request, "token.revoke", subject=f"token:{token_id}")
    owner = None if allowed(principal, Permission.ACCOUNT_ADMIN, TENANT_WIDE) else principal.user_id
    accts.revoke_token(token_id, actor=principal.actor, owner_id=owner, client=client_address(request))
    entry.audited = True
    return Response(status_code=204)


@router.post("/users")
async def create_user(
    request: Request,
    body: UserCreate,
    principal: PrincipalDep,
    accts: AccountsDep,
) -> dict[str, Any]:
    """Admins only: a user with role bindings (`{"role": "viewer", "namespace": "company"}`)."""
    entry = note(request, "user.create", subject=f"user:{body.username}")
    require(principal, Permission.ACCOUNT_ADMIN, TENANT_WIDE)
    bindings = [_binding(b) for b in body.roles]
    row = await run_in_threadpool(
        lambda: accts.create_user(
            body.username, body.password, bindings, actor=principal.actor, client=client_address(request)
        )
    )
    entry.audited = True
    return {"id": row.id, "username": row.username, "roles": [r.model_dump() for r in body.roles]}


def _lifetime(request: Request, expires_in: str | None) -> timedelta | None:
    """The token's lifetime: positive and bounded; a console session's tokens always expire.

    A session cookie is a browser's credential: a page script or a borrowed screen must not turn it into a
    credential that outlives the session by years (or forever).
    """
    config = settings(request)
    limit, variable = timedelta(seconds=config.token_max_ttl_s), "CHORUS_TOKEN_MAX_TTL_S"
    if getattr(request.state, "console_session", None) is not None:
        console_limit = timedelta(seconds=config.console_token_max_ttl_s)
        if console_limit < limit:
            limit, variable = console_limit, "CHORUS_CONSOLE_TOKEN_MAX_TTL_S"
        if not expires_in:
            return limit
    if not expires_in:
        return None
    try:
        lifetime = parse_duration(expires_in)
    except ValueError as e:
        raise QueryInvalid("expiresIn", str(e)) from None
    if lifetime <= timedelta(0):
        raise QueryInvalid("expiresIn", "must be a positive duration")
    if lifetime > limit:
        raise QueryInvalid("expiresIn", f"must be at most {format_duration(limit)} ({variable})")
    return lifetime


def _binding(b: RoleBindingCreate) -> Binding:
    try:
        return Binding(parse_binding(b.role).role, b.namespace)
    except BindingInvalid as e:
        raise QueryInvalid("roles.role", e.message) from e
