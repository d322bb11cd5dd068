"""FastAPI dependencies: the engine and a read session from the app state, the tenant check, the actor."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import HTTPException, Request
from sqlalchemy.orm import Session

from orchestrator.engine import Engine


def engine(request: Request) -> Engine:
    return request.app.state.engine  # type: ignore[no-any-return]


def read_session(request: Request) -> Iterator[Session]:
    """A session for read queries; writes go through the engine, which owns its transactions."""
    with request.app.state.engine.sessions() as session:
        yield session


def check_tenant(tenant: str) -> str:
    if tenant != "main":
        raise HTTPException(status_code=400, detail="Tenant must be 'main' for OSS version")
    return tenant


def actor(request: Request) -> str:
    """Who is acting; anonymous until authentication lands (loopback-only in `chorus local`)."""
    client = request.client.host if request.client else "unknown"
    return f"api:anonymous@{client}"
