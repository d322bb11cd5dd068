"""The one table from ChorusError classes to HTTP statuses, and Kestra's error body shape."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from orchestrator.core.errors import (
    ChorusError,
    Conflict,
    ExpressionError,
    FlowInvalid,
    InputInvalid,
    NotFound,
)

STATUS_BY_ERROR: tuple[tuple[type[ChorusError], int], ...] = (
    (NotFound, 404),
    (Conflict, 409),
    (FlowInvalid, 422),
    (InputInvalid, 422),
    (ExpressionError, 422),
)


def validation_body(error: ChorusError) -> dict[str, Any]:
    errors: list[dict[str, Any]] = []
    if isinstance(error, FlowInvalid):
        errors = [
            {"path": d.path, "line": d.line, "column": d.column, "message": d.message, "suggestion": d.suggestion}
            for d in error.errors
        ]
    elif isinstance(error, InputInvalid):
        errors = [{"path": error.path, "line": None, "column": None, "message": error.message}]
    return {"message": f"Invalid entity: {error.message}", "_embedded": {"errors": errors}}


def chorus_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ChorusError)
    status = next((code for cls, code in STATUS_BY_ERROR if isinstance(exc, cls)), 400)
    body = validation_body(exc) if status == 422 else {"message": exc.message, "_embedded": {"errors": []}}
    body["_links"] = {"self": {"href": str(request.url.path), "templated": False}}
    return JSONResponse(body, status_code=status)
