"""What execution action routes read and answer: `onResume` form inputs, bodies validated as FastAPI would,
and the execution's JSON (shared by api/routes/actions, approvals and reviews)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool

from api.forms import form_inputs, is_multipart
from api.schemas import execution_public
from orchestrator import store
from orchestrator.core.errors import NotFound
from orchestrator.engine import Engine
from orchestrator.store.database import read_only
from orchestrator.store.tables import ExecutionRow


def _execution_row(eng: Engine, execution_id: str) -> ExecutionRow | None:
    with read_only(eng.sessions) as session:
        return store.get_execution(session, execution_id)


async def resume_inputs(request: Request, eng: Engine, execution_id: str) -> dict[str, Any]:
    """The `onResume` inputs of a multipart form; a file goes to the execution's storage."""
    if not is_multipart(request):
        return {}  # no execution lookup for a body without inputs
    row = await run_in_threadpool(_execution_row, eng, execution_id)
    if row is None:
        raise NotFound("execution", execution_id)
    return await form_inputs(request, eng.settings.data_dir, row.namespace, row.flow_id, row.id)


def is_execution(eng: Engine, execution_id: str) -> bool:
    with eng.sessions() as session:
        return store.get_execution(session, execution_id) is not None


def validated_body(shape: Any, raw: bytes) -> Any:
    """Validate a body the way FastAPI would have (a 422 with the same error shape)."""
    try:
        return TypeAdapter(shape).validate_json(raw or b"null")
    except ValidationError as e:
        raise RequestValidationError(e.errors(include_url=False)) from e


def json_text(value: str | None) -> bytes:
    return json.dumps(value).encode()


def execution_answer(eng: Engine, execution_id: str) -> dict[str, Any]:
    """The execution's JSON after an action (Kestra 2.0 answers every action with it)."""
    with eng.sessions() as session:
        row = store.get_execution(session, execution_id)
        assert row is not None
        return execution_public(row, store.task_runs_of(session, execution_id))
