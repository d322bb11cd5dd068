"""How the HTTP API is assembled: routers under both path families, auth, limits, audit, error handlers.

`create_app` calls `install` once and `start` in its lifespan; everything about authentication, RBAC,
request limits and the audit of API actions is set up here, so `app.py` stays about processes.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib.metadata import version
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from api.deps import PrincipalDep, SessionDep, SettingsDep, authenticate, check_tenant_path
from api.errors import (
    DATABASE_UNAVAILABLE,
    data_error_handler,
    database_unavailable_handler,
    http_error_handler,
    request_validation_handler,
)
from api.login_throttle import LoginThrottle
from api.middleware import AuditMiddleware, LimitsMiddleware
from api.permissions import Permission
from api.proxies import TrustedProxies
from api.routes import (
    agent_memory,
    audit,
    auth,
    executions,
    flows,
    flows_bulk,
    kv,
    logs,
    namespace_files,
    plugins,
    stats,
    triggers,
)
from api.routes.executions import visible_execution
from orchestrator import store
from orchestrator.engine import Engine
from orchestrator.engine.accounts import Accounts
from orchestrator.engine.kv import KeyValueStore
from orchestrator.settings import Settings
from orchestrator.store.errors import DataError

#: Execution actions whose routes live elsewhere (the engine's owner adds them): the permission per action.
_ACTION_PERMISSIONS = {
    "resume": Permission.EXECUTION_RESUME,
    # A person's decision on a paused execution: the approver role's, not only an operator's (api/routes/approvals).
    "approve": Permission.EXECUTION_RESUME,
    "reject": Permission.EXECUTION_RESUME,
    "approvals": Permission.EXECUTION_READ,
    # Reviewing an Approval task is resuming with a decision: the approver role does both (api/routes/reviews).
    "review": Permission.EXECUTION_RESUME,
}


def guard_execution_action(
    request: Request,
    principal: PrincipalDep,
    session: SessionDep,
) -> None:
    """Router-level RBAC for `/executions/{id}/[actions/]{action}` routes: resume needs `execution.resume`,
    every other action `execution.control`; unknown or invisible executions are 404."""
    execution_id = request.path_params.get("execution_id") or request.path_params.get("executionId")
    if not execution_id:
        return
    name = request.url.path.rstrip("/").rsplit("/", 1)[-1]
    permission = _ACTION_PERMISSIONS.get(name, Permission.EXECUTION_CONTROL)
    from api.deps import note

    if "/actions/" not in request.url.path and store.get_execution(session, str(execution_id)) is None:
        # `POST /executions/{namespace}/{flowId}` for a flow named like an action (`pause`, `resume`,
        # `restart`): the action route creates the execution, guarded as any creation is.
        return
    note(request, f"execution.{name}", subject=str(execution_id))
    visible_execution(request, session, principal, permission, str(execution_id))


def install(app: FastAPI, config: Settings, *, action_routers: Sequence[APIRouter] = ()) -> None:
    """Routers (tenant and tenant-less paths), middleware and handlers; refuses an unsafe bind first."""
    config.refuse_unsafe_bind()
    app.add_exception_handler(RequestValidationError, request_validation_handler)
    app.add_exception_handler(HTTPException, http_error_handler)
    app.add_exception_handler(DataError, data_error_handler)
    for error in DATABASE_UNAVAILABLE:
        app.add_exception_handler(error, database_unavailable_handler)
    # Added last = outermost: limits run before anything reads the body; audit sees every answer.
    app.add_middleware(AuditMiddleware)
    app.add_middleware(LimitsMiddleware, max_body_bytes=config.max_body_bytes)
    # Outermost of these: the audit, the lockout and the cookies' Secure flag all read the client it sets.
    app.add_middleware(TrustedProxies, networks=config.trusted_proxy_networks)
    app.include_router(_open_router())
    guarded = [Depends(authenticate), Depends(guard_execution_action)]
    # Order matters: fixed segments (`/flows/export/...`, `/executions/search`, actions) before `{param}` ones.
    ordered: list[tuple[APIRouter, list[Any]]] = [
        (flows_bulk.router, []),
        (flows.router, []),
        (audit.router, []),
        *((r, guarded) for r in action_routers),
        (executions.router, []),
        (logs.router, []),
        (kv.router, []),
        (namespace_files.router, []),
        (stats.router, []),
        (agent_memory.router, []),
        (triggers.router, []),
        (auth.router, []),
        (plugins.router, []),
    ]
    for router, extra in ordered:
        app.include_router(router, prefix="/api/v1/{tenant}", dependencies=[Depends(check_tenant_path), *extra])
        # kestra's in-script `Flow()` and older clients use the tenant-less paths; same routes, one schema.
        app.include_router(router, prefix="/api/v1", dependencies=extra, include_in_schema=False)


def start(app: FastAPI, engine: Engine) -> None:
    """Lifespan step: the account and KV services, and the bootstrap admin."""
    app.state.accounts = Accounts(engine.settings, engine.sessions)
    config = engine.settings
    app.state.login_throttle = LoginThrottle(
        max_failures=config.login_max_failures,
        window_s=config.login_window_s,
        lockout_s=config.login_lockout_s,
        address_max_failures=config.login_address_max_failures,
    )
    app.state.kv = KeyValueStore(engine.settings.tenant, engine.sessions)
    app.state.accounts.ensure_bootstrap_admin()


def _open_router() -> APIRouter:
    router = APIRouter(tags=["Configs"])

    @router.get("/api/v1/configs")
    def configs(
        config: SettingsDep,
    ) -> dict[str, Any]:
        """Kestra's configuration endpoint (open): version and edition, for clients that check them."""
        return {
            "version": version("chorus"),
            "edition": "OSS",
            "isBasicAuthEnabled": config.auth_required,
            "isTaskRunEnabled": False,
            "isAnonymousUsageEnabled": False,
            "tenants": {"enabled": False},
        }

    return router
