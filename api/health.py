"""Health endpoints: `/health` says the process serves (liveness), `/health/ready` that it can reach its database."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from orchestrator.store.database import ping, read_only
from orchestrator.store.errors import SQLAlchemyError

logger = logging.getLogger(__name__)

router = APIRouter(tags=["Health"])


@router.get("/health")
def health() -> dict[str, Any]:
    """Liveness: answers while the process serves requests. It never touches the database, so a database
    outage takes every replica out of the Service (readiness) without restarting them all (liveness)."""
    return {"status": "UP"}


@router.get("/health/ready", response_model=None)
def ready(request: Request) -> dict[str, Any] | JSONResponse:
    """Readiness: 200 once a query on the database answers, else 503 naming the failing check."""
    engine = getattr(request.app.state, "engine", None)
    if engine is None:  # the lifespan has not built it yet
        return JSONResponse({"status": "DOWN", "checks": {"database": "starting"}}, status_code=503)
    try:
        with read_only(engine.sessions) as session:
            # Bounded: a probe that hangs on a sick database would hold a worker thread per period.
            ping(session, timeout_ms=2000)
    except SQLAlchemyError as e:
        logger.warning("readiness: the database does not answer: %s", type(e).__name__)
        return JSONResponse({"status": "DOWN", "checks": {"database": "DOWN"}}, status_code=503)
    return {"status": "UP", "checks": {"database": "UP"}}
