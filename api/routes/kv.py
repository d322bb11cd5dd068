"""Namespace KV store and namespaces: Kestra's `/namespaces/{ns}/kv/{key}` with its value typing."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Header, Request, Response
from starlette.concurrency import run_in_threadpool

from api.bounds import PAGE, SIZE
from api.deps import KvDep, PrincipalDep, SessionDep, TenantDep, api_action, authenticate, note
from api.permissions import Permission, allowed, guard, prefixes
from orchestrator import store
from orchestrator.engine.kv import ValueInvalid, check_key, check_namespace, parse_ttl, typed_value
from orchestrator.store import search as store_search
from orchestrator.store.database import Session
from orchestrator.store.queries import namespace_in_prefix
from orchestrator.store.tables import KeyValueRow

router = APIRouter(tags=["KV"], dependencies=[Depends(authenticate)])

_LITERAL = {
    "content": {
        "text/plain": {"schema": {"type": "string"}},
        "application/json": {"schema": {}},
    },
    "required": True,
}


def _entry(row: KeyValueRow) -> dict[str, Any]:
    body: dict[str, Any] = {
        "key": row.key,
        "description": row.description,
        "creationDate": store.iso(row.created_at),
        "updateDate": store.iso(row.updated_at),
        "revision": row.revision,
    }
    if row.expires_at is not None:
        body["expirationDate"] = store.iso(row.expires_at)
    return body


@router.put("/namespaces/{namespace}/kv/{key}", openapi_extra={"requestBody": _LITERAL})
async def put_value(
    namespace: str,
    key: str,
    request: Request,
    principal: PrincipalDep,
    kv: KvDep,
    ttl: str | None = Header(default=None, description="ISO-8601 time to live, e.g. PT1H."),
    description: str | None = Header(default=None),
) -> Response:
    """The body is a JSON literal: `"text"` STRING, `42` NUMBER, `true` BOOLEAN, `{..}` JSON, `2024-01-01` DATE, ..."""
    entry = note(request, "kv.put", namespace=namespace, subject=f"{namespace}/kv/{key}")
    guard(request, principal, Permission.KV_WRITE, "kv", namespace, f"{namespace}/{key}")
    check_namespace(namespace)
    check_key(key)
    raw = await request.body()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueInvalid("body", "not UTF-8 text") from e
    value, expiry = typed_value(text), parse_ttl(ttl)
    if description is not None and "\x00" in description:
        raise ValueInvalid("description", "cannot contain the NUL character")
    action = api_action(request, entry)
    await run_in_threadpool(lambda: kv.put(namespace, key, value, ttl=expiry, description=description, audit=action))
    entry.audited = True
    return Response(status_code=200)


@router.get("/namespaces/{namespace}/kv/{key}")
def get_value(
    request: Request,
    namespace: str,
    key: str,
    principal: PrincipalDep,
    kv: KvDep,
) -> dict[str, Any]:
    """`{type, value, revision, updated}`; 404 when missing, 410 when expired."""
    guard(request, principal, Permission.KV_READ, "kv", namespace, f"{namespace}/{key}")
    row = kv.get(namespace, key)
    return {
        "type": row.value_type,
        "value": row.value.get("v"),
        "revision": row.revision,
        "updated": store.iso(row.updated_at),
    }


@router.get("/namespaces/{namespace}/kv")
def list_keys(
    request: Request,
    namespace: str,
    principal: PrincipalDep,
    kv: KvDep,
) -> list[dict[str, Any]]:
    guard(request, principal, Permission.KV_READ, "kv", namespace, namespace)
    return [_entry(r) for r in kv.entries(namespace)]


@router.delete("/namespaces/{namespace}/kv/{key}")
def delete_value(
    request: Request,
    namespace: str,
    key: str,
    principal: PrincipalDep,
    kv: KvDep,
) -> bool:
    """`true` when a value was deleted, `false` when there was none."""
    entry = note(request, "kv.delete", namespace=namespace, subject=f"{namespace}/kv/{key}")
    guard(request, principal, Permission.KV_WRITE, "kv", namespace, f"{namespace}/{key}")
    deleted = kv.delete(namespace, key, audit=api_action(request, entry))
    entry.audited = True
    return deleted


# ---- namespaces ---------------------------------------------------------------------------------


def _all_namespaces(session: Session, tenant: str) -> list[str]:
    """Kestra OSS's implicit namespaces: every namespace in use, each of its parents, and `system`."""
    names = {"system"}
    for namespace in store_search.distinct_namespaces(session, tenant):
        parts = namespace.split(".")
        names.update(".".join(parts[: i + 1]) for i in range(len(parts)))
    return sorted(names)


@router.get("/namespaces/search")
def search_namespaces(
    tenant: TenantDep,
    principal: PrincipalDep,
    session: SessionDep,
    q: str | None = None,
    page: int = PAGE,
    size: int = SIZE,
    existing: bool = False,
) -> dict[str, Any]:
    if page < 1 or not 1 <= size <= 1000:
        from api.errors import QueryInvalid

        raise QueryInvalid("page" if page < 1 else "size", "page must be >= 1 and size between 1 and 1000")
    visible = prefixes(principal, Permission.NAMESPACE_READ)
    names = [
        n
        for n in _all_namespaces(session, tenant)
        if (not q or q.lower() in n.lower()) and (visible is None or any(namespace_in_prefix(n, p) for p in visible))
    ]
    start = (page - 1) * size
    return {"results": [{"id": n, "disabled": False, "deleted": False} for n in names[start : start + size]],
            "total": len(names)}  # fmt: skip


@router.get("/namespaces/{namespace}")
def get_namespace(
    request: Request,
    namespace: str,
    tenant: TenantDep,
    principal: PrincipalDep,
    session: SessionDep,
) -> dict[str, Any]:
    from orchestrator.core.errors import NotFound

    if not allowed(principal, Permission.NAMESPACE_READ, namespace) or namespace not in _all_namespaces(
        session, tenant
    ):
        request.state.hidden = not allowed(principal, Permission.NAMESPACE_READ, namespace)
        raise NotFound("namespace", namespace)
    return {"id": namespace, "disabled": False, "deleted": False}
