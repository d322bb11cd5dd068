"""The one table from ChorusError classes to HTTP statuses, and Kestra's error body shape.

Every 4xx body is `{"message", "_links", "_embedded": {"errors": [{"path", "message", ...}]}}` and names
the field (or query parameter, header, path segment) at fault; a 500 only ever means a bug.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from api.login_throttle import TooManyAttempts
from orchestrator.core.errors import (
    ChorusError,
    ConfigurationError,
    Conflict,
    ExpressionError,
    FlowInvalid,
    InputInvalid,
    LabelsInvalid,
    NoTaskToRestart,
    NotFound,
)
from orchestrator.engine.accounts import BindingInvalid, PermissionDenied, Unauthenticated
from orchestrator.engine.kv import KeyExpired, ValueInvalid
from orchestrator.engine.ledger_replay import ReplayInvalid
from orchestrator.store.errors import DataError, DBAPIError, InterfaceError, OperationalError, PoolTimeout
from orchestrator.store.search import FilterValueInvalid


class QueryInvalid(ChorusError):
    """Raised when a query parameter, header or body field of a request is unusable."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        super().__init__(f"{path}: {message}")


class PayloadTooLarge(ChorusError):
    """Raised when a request body is larger than the configured limit."""

    def __init__(self, limit: int) -> None:
        self.path = "body"
        super().__init__(f"request body larger than {limit} bytes (CHORUS_MAX_BODY_BYTES)")


class UnsupportedMediaType(ChorusError):
    """Raised when a request body comes in a media type the endpoint does not read."""

    def __init__(self, received: str, expected: str) -> None:
        self.path = "Content-Type"
        super().__init__(f"{received or 'a body without a Content-Type'} is not read here; send {expected}")


STATUS_BY_ERROR: tuple[tuple[type[ChorusError], int], ...] = (
    (Unauthenticated, 401),
    (PermissionDenied, 403),
    (KeyExpired, 410),
    (NotFound, 404),
    (Conflict, 409),
    (PayloadTooLarge, 413),
    (UnsupportedMediaType, 415),
    (FlowInvalid, 422),
    (NoTaskToRestart, 422),
    (InputInvalid, 422),
    (LabelsInvalid, 422),
    (ValueInvalid, 422),
    (ReplayInvalid, 422),
    (QueryInvalid, 422),
    (FilterValueInvalid, 422),
    (BindingInvalid, 422),
    (ExpressionError, 422),
    (ConfigurationError, 422),
    (TooManyAttempts, 429),
)


def status_of(error: ChorusError) -> int:
    return next((code for cls, code in STATUS_BY_ERROR if isinstance(error, cls)), 400)


def _details(error: ChorusError) -> list[dict[str, Any]]:
    if isinstance(error, FlowInvalid):
        return [
            {"path": d.path, "line": d.line, "column": d.column, "message": d.message, "suggestion": d.suggestion}
            for d in error.errors
        ]
    path = getattr(error, "path", None)
    if path is None and isinstance(error, NotFound):
        path = error.kind
    return [{"path": path, "line": None, "column": None, "message": error.message}] if path else []


def validation_body(error: ChorusError) -> dict[str, Any]:
    return {"message": f"Invalid entity: {error.message}", "_embedded": {"errors": _details(error)}}


def error_body(request: Request, status: int, message: str, errors: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "message": message,
        "_links": {"self": {"href": str(request.url.path), "templated": False}},
        "_embedded": {"errors": errors},
    }


def chorus_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ChorusError)
    status = status_of(exc)
    message = f"Invalid entity: {exc.message}" if status == 422 else exc.message
    headers = {"WWW-Authenticate": 'Basic realm="chorus", charset="UTF-8"'} if status == 401 else None
    if isinstance(exc, TooManyAttempts):
        headers = {"Retry-After": str(exc.retry_after_s)}
    return JSONResponse(error_body(request, status, message, _details(exc)), status_code=status, headers=headers)


def request_validation_handler(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's parameter validation, in Kestra's shape: one entry per field, named `query.size` etc."""
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"path": ".".join(str(p) for p in e.get("loc", ())), "line": None, "column": None, "message": e.get("msg")}
        for e in exc.errors()
    ]
    summary = "; ".join(f"{e['path']}: {e['message']}" for e in errors)
    return JSONResponse(error_body(request, 422, f"Invalid entity: {summary}", errors), status_code=422)


#: Errors that mean "the database is unreachable right now" (down, restarting, pool exhausted), not a bug.
DATABASE_UNAVAILABLE: tuple[type[Exception], ...] = (OperationalError, InterfaceError, PoolTimeout)
#: What a 503 asks clients to wait before trying again; a restarting PostgreSQL is usually back within seconds.
RETRY_AFTER_S = 2


def database_unavailable_handler(request: Request, exc: Exception) -> JSONResponse:
    """The database cannot be reached: a 503 the client may retry, not a 500 (nothing is wrong with the request)."""
    assert isinstance(exc, DBAPIError | PoolTimeout)
    message = "the database is unavailable; retry shortly"
    errors = [{"path": "database", "line": None, "column": None, "message": message}]
    return JSONResponse(
        error_body(request, 503, message, errors), status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)}
    )


#: PostgreSQL's SQLSTATE for a pattern its regex engine refuses (`filters[f][REGEX]=(`).
_INVALID_REGEX = "2201B"


def data_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """A value PostgreSQL refused (SQLSTATE class 22, "data exception"): the request's fault, so a 422.

    The store cannot check every value the way PostgreSQL reads it (its regex dialect is not Python's), so
    the database's refusal is the check; the regex filter named in the query is the field at fault.
    """
    assert isinstance(exc, DataError)
    state = getattr(exc.orig, "sqlstate", None)
    path, message = "query", "a value in the request is out of range or malformed"
    if state == _INVALID_REGEX:
        keys = [k for k in request.query_params if k.upper().endswith("[REGEX]")]
        path = keys[0][: keys[0].rindex("[")] if keys else "query"
        message = f"{path}: invalid regular expression"
    errors = [{"path": path, "line": None, "column": None, "message": message}]
    return JSONResponse(error_body(request, 422, f"Invalid entity: {message}", errors), status_code=422)


def http_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's own 404/405 (unknown route or method) and explicit HTTPExceptions, as JSON."""
    assert isinstance(exc, HTTPException)
    path = "tenant" if "Tenant" in str(exc.detail) else "path"
    errors = [{"path": path, "line": None, "column": None, "message": str(exc.detail)}]
    return JSONResponse(
        error_body(request, exc.status_code, str(exc.detail), errors),
        status_code=exc.status_code,
        headers=getattr(exc, "headers", None),
    )
