"""Namespace files: Kestra's `/namespaces/{ns}/files...` (search, stats, directory, content, upload, move, delete).

Reading needs `file.read` on the namespace, changing `file.write`; a caller who cannot read a namespace's
files is told nothing exists there (404), as for KV entries. The files are those of the namespace tasks and
`read('/path')` (orchestrator/namespace_files.py).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from api.deps import PrincipalDep, SettingsDep, authenticate, note
from api.errors import QueryInvalid
from api.permissions import Permission, guard
from orchestrator import namespace_files as files
from orchestrator.engine.accounts import Principal

router = APIRouter(tags=["Files"], dependencies=[Depends(authenticate)])

_UPLOAD = {
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {"fileContent": {"type": "string", "format": "binary"}},
                "required": ["fileContent"],
            }
        }
    },
    "required": True,
}


def attributes_public(found: files.FileAttributes) -> dict[str, Any]:
    """Kestra's FileAttributes JSON."""
    return {
        "fileName": found.file_name,
        "lastModifiedTime": found.last_modified_ms,
        "creationTime": found.creation_ms,
        "type": "Directory" if found.is_directory else "File",
        "size": found.size,
        "metadata": {},
    }


def _read(request: Request, principal: Principal, namespace: str, path: str | None) -> None:
    guard(request, principal, Permission.FILE_READ, "file", namespace, f"{namespace}:/{(path or '').lstrip('/')}")


def _write(request: Request, principal: Principal, namespace: str, action: str, path: str) -> None:
    # Not marked audited: the API's audit middleware records the change with its outcome.
    note(request, f"file.{action}", namespace=namespace, subject=f"{namespace}:/{path.lstrip('/')}"[:600])
    guard(request, principal, Permission.FILE_WRITE, "file", namespace, f"{namespace}:/{path.lstrip('/')}")


@router.get("/namespaces/{namespace}/files/search")
async def search_files(
    request: Request, namespace: str, principal: PrincipalDep, config: SettingsDep, q: str = ""
) -> list[str]:
    """Paths (`/dir/name`) of the namespace's files that contain `q`."""
    _read(request, principal, namespace, None)
    return await run_in_threadpool(files.search, config.data_dir, namespace, q)


@router.get("/namespaces/{namespace}/files/stats")
async def file_stats(
    request: Request, namespace: str, principal: PrincipalDep, config: SettingsDep, path: str | None = None
) -> dict[str, Any]:
    """A file's or directory's attributes; the namespace root's without `path`."""
    _read(request, principal, namespace, path)
    return attributes_public(await run_in_threadpool(files.stats, config.data_dir, namespace, path))


@router.get("/namespaces/{namespace}/files/directory")
async def list_directory(
    request: Request, namespace: str, principal: PrincipalDep, config: SettingsDep, path: str | None = None
) -> list[dict[str, Any]]:
    """A directory's entries (directories first); the root's without `path`."""
    _read(request, principal, namespace, path)
    found = await run_in_threadpool(files.list_directory, config.data_dir, namespace, path)
    return [attributes_public(a) for a in found]


@router.post("/namespaces/{namespace}/files/directory")
async def create_directory(
    request: Request, namespace: str, principal: PrincipalDep, config: SettingsDep, path: str
) -> Response:
    _write(request, principal, namespace, "mkdir", path)
    await run_in_threadpool(files.make_directory, config.data_dir, namespace, path)
    return Response(status_code=200)


@router.get("/namespaces/{namespace}/files")
async def file_content(
    request: Request, namespace: str, principal: PrincipalDep, config: SettingsDep, path: str
) -> FileResponse:
    """The file's bytes (`application/octet-stream`, as an attachment named after the file)."""
    _read(request, principal, namespace, path)
    local = await run_in_threadpool(files.read, config.data_dir, namespace, path)
    return FileResponse(local, media_type="application/octet-stream", filename=local.name)


@router.post("/namespaces/{namespace}/files", openapi_extra={"requestBody": _UPLOAD})
async def upload_file(
    request: Request, namespace: str, principal: PrincipalDep, config: SettingsDep, path: str = ""
) -> Response:
    """Create or replace the file at `path` from the multipart part `fileContent`; a `.zip` is unpacked."""
    _write(request, principal, namespace, "upload", path or "/")
    form = await request.form()
    part = form.get("fileContent")
    if not isinstance(part, UploadFile):
        raise QueryInvalid("fileContent", "send the file as the multipart part `fileContent`")
    content = await part.read()
    await run_in_threadpool(files.write, config.data_dir, namespace, path, part.filename or path, content)
    return Response(status_code=200)


@router.put("/namespaces/{namespace}/files")
async def move_file(
    request: Request,
    namespace: str,
    principal: PrincipalDep,
    config: SettingsDep,
    to: str,
    from_: str = Query(alias="from"),  # Kestra's name, a Python keyword
) -> Response:
    """Move (rename) a file or directory from `from` to `to`; an existing `to` is a 409."""
    _write(request, principal, namespace, "move", f"{from_} -> {to}")
    await run_in_threadpool(files.move, config.data_dir, namespace, from_, to)
    return Response(status_code=200)


@router.delete("/namespaces/{namespace}/files")
async def delete_file(
    request: Request, namespace: str, principal: PrincipalDep, config: SettingsDep, path: str
) -> Response:
    """Delete a file, or a directory with its content; folders left empty go too."""
    _write(request, principal, namespace, "delete", path)
    await run_in_threadpool(files.delete, config.data_dir, namespace, path)
    return Response(status_code=200)
