"""Multipart forms of inputs (execution creation, resume): a file goes to the execution's storage, the input
is its `kestra:///` URI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from orchestrator import internal_storage as storage
from orchestrator.core.errors import InputInvalid


def is_multipart(request: Request) -> bool:
    return request.headers.get("content-type", "").startswith("multipart/form-data")


async def form_inputs(
    request: Request, data_dir: Path, namespace: str, flow_id: str, execution_id: str
) -> dict[str, Any]:
    """The inputs of a multipart request (none for any other body), files stored under the execution."""
    if not is_multipart(request):
        return {}
    inputs: dict[str, Any] = {}
    form = await request.form()
    for key, value in form.multi_items():
        if not isinstance(value, UploadFile):
            inputs[key] = value
            continue
        try:
            path = storage.input_file_uri_path(namespace, flow_id, execution_id, key, value.filename or key)
        except storage.StorageError as e:
            raise InputInvalid(key, e.message) from e  # a 422 naming the input, not a bare 400
        inputs[key] = await run_in_threadpool(storage.write, data_dir, path, await value.read())
    return inputs
