"""Who may do what: the one table of route family and role, and the namespace-scoped checks built on it.

A role binding grants its role's permissions on every namespace under its prefix (`company` covers
`company` and `company.team`; the empty prefix covers all). A caller who cannot *read* a namespace
is not told its objects exist: checks on an object answer 404 there, and 403 only where the caller
can see the object but not act on it.
"""

from __future__ import annotations

import enum

from starlette.requests import Request

from orchestrator.core.errors import NotFound
from orchestrator.engine.accounts import ROLES, PermissionDenied, Principal
from orchestrator.store.queries import namespace_in_prefix


class Permission(enum.StrEnum):
    FLOW_READ = "flow.read"  #: get, search, list, revisions, export, validate
    FLOW_WRITE = "flow.write"  #: create, update, delete, enable/disable, import
    EXECUTION_READ = "execution.read"  #: get, search, follow, its audit trail
    EXECUTION_RUN = "execution.run"  #: create an execution
    EXECUTION_CONTROL = "execution.control"  #: kill, restart, replay, pause, change state, labels, delete
    EXECUTION_RESUME = "execution.resume"  #: resume (approve) a paused execution
    LOG_READ = "log.read"  #: logs of executions: list, download, follow, search
    KV_READ = "kv.read"  #: read and list KV entries
    KV_WRITE = "kv.write"  #: put and delete KV entries
    FILE_READ = "file.read"  #: list, search and download namespace files
    FILE_WRITE = "file.write"  #: upload, move and delete namespace files
    NAMESPACE_READ = "namespace.read"  #: namespaces list
    AUDIT_READ = "audit.read"  #: the audit trail across flows, namespaces and API actions
    ACCOUNT_ADMIN = "account.admin"  #: users, role bindings and everyone's tokens


P = Permission
_VIEWER = frozenset({P.FLOW_READ, P.EXECUTION_READ, P.LOG_READ, P.NAMESPACE_READ})
_APPROVER = _VIEWER | {P.EXECUTION_RESUME}
_OPERATOR = _APPROVER | {P.EXECUTION_RUN, P.EXECUTION_CONTROL, P.KV_READ, P.FILE_READ}
_DEVELOPER = _OPERATOR | {P.FLOW_WRITE, P.KV_WRITE, P.FILE_WRITE}

#: The table: role -> permissions it grants (within its binding's namespace prefix).
ROLE_PERMISSIONS: dict[str, frozenset[Permission]] = {
    "admin": frozenset(Permission),
    "developer": _DEVELOPER,
    "operator": _OPERATOR,
    "approver": _APPROVER,
    "viewer": _VIEWER,
}
assert tuple(ROLE_PERMISSIONS) == ROLES, "every role of orchestrator.engine.accounts has a row here"

#: The namespace argument for tenant-wide permissions (accounts): only bindings with the empty prefix hold it.
TENANT_WIDE = ""

#: What "can see this namespace" means, per object family: without it, the object is a 404.
VISIBILITY: dict[str, Permission] = {
    "flow": P.FLOW_READ,
    "execution": P.EXECUTION_READ,
    "log": P.EXECUTION_READ,
    "kv": P.KV_READ,
    "file": P.FILE_READ,
}


def allowed(principal: Principal, permission: Permission, namespace: str | None) -> bool:
    """Whether any binding grants `permission` on `namespace` (None: on at least one namespace)."""
    return any(
        permission in ROLE_PERMISSIONS.get(b.role, frozenset())
        and (namespace is None or namespace_in_prefix(namespace, b.namespace_prefix))
        for b in principal.bindings
    )


def prefixes(principal: Principal, permission: Permission) -> tuple[str, ...] | None:
    """Namespace prefixes where `permission` holds, for narrowing searches; None means everywhere."""
    found = tuple(
        b.namespace_prefix for b in principal.bindings if permission in ROLE_PERMISSIONS.get(b.role, frozenset())
    )
    return None if any(not p.rstrip(".") for p in found) else found


def require(principal: Principal, permission: Permission, namespace: str | None = None) -> None:
    """403 unless allowed (for actions that create something, where there is no object to hide)."""
    if not allowed(principal, permission, namespace):
        raise PermissionDenied(permission, namespace or None)


def require_on(principal: Principal, permission: Permission, kind: str, namespace: str, key: str) -> None:
    """Check an action on an existing object: 404 when its namespace is invisible, 403 when only the act is denied."""
    if not allowed(principal, VISIBILITY.get(kind, permission), namespace) and not allowed(
        principal, permission, namespace
    ):
        raise NotFound(kind, key)
    require(principal, permission, namespace)


def guard(request: Request, principal: Principal, permission: Permission, kind: str, namespace: str, key: str) -> None:
    """`require_on` for a route: a hidden object's 404 is marked so the audit trail records it as denied."""
    try:
        require_on(principal, permission, kind, namespace, key)
    except NotFound:
        request.state.hidden = True
        raise
