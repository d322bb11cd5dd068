"""The web console under `/ui`: one page of hand-written JS modules, its login, and the AI usage API it reads.

`mount(app)` is the only entry point; `api.app.create_app` calls it after the API's routers, so the API's
own paths win over the usage route's `{tenant}` segment (`/api/v1/flows/ai/usage` is a flow).
"""

from __future__ import annotations

from fastapi import Depends, FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.middleware import Middleware

from api.console import routes, usage_api
from api.console.session import ConsoleSessionMiddleware
from api.deps import check_tenant_path

__all__ = ["mount"]


def mount(app: FastAPI) -> None:
    """Session middleware, the static files, the page, login/logout, and `/api/v1/{tenant}/ai/usage`."""
    # Innermost (appended, where add_middleware prepends): it runs inside the limits and audit middleware,
    # so a refused CSRF check is audited like any denied request, and the audit sees the session's user.
    app.user_middleware.append(Middleware(ConsoleSessionMiddleware))
    # Before the page's catch-all route, which would otherwise answer for the assets too.
    app.mount("/ui/static", StaticFiles(directory=routes.STATIC_DIR, check_dir=False), name="console-static")
    app.include_router(routes.router)
    app.include_router(usage_api.router, prefix="/api/v1/{tenant}", dependencies=[Depends(check_tenant_path)])
    app.include_router(usage_api.router, prefix="/api/v1", include_in_schema=False)
