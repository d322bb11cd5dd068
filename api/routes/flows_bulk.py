"""Flows in bulk: enable/disable, export (zip or multi-document YAML), import, delete — by ids or by query."""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import replace
from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from api.deps import ActorDep, EngineDep, PrincipalDep, TenantDep, authenticate, note
from api.errors import QueryInvalid
from api.filters import parse_search
from api.permissions import Permission, allowed, prefixes, require
from api.routes.flows import FLOW_FIELDS, yaml_body
from orchestrator import store
from orchestrator.core.errors import FlowInvalid
from orchestrator.core.parse import parse_flow, split_documents
from orchestrator.engine import Engine
from orchestrator.engine.accounts import Principal
from orchestrator.store import search as store_search
from orchestrator.store.tables import FlowRevisionRow

router = APIRouter(tags=["Flows"], dependencies=[Depends(authenticate)])

_DISABLED_LINE = re.compile(r"^disabled[ \t]*:.*$", re.MULTILINE)
_ZIP_MAGIC = b"PK\x03\x04"
_MAX_FLOWS = 10_000
#: Most bytes an imported zip may unpack to: the body cap bounds the zip, not what it inflates to (a few MB of
#: zip can hold gigabytes of one repeated byte, all of which would be read into the server's memory).
_MAX_UNZIPPED_BYTES = 100 * 1024 * 1024


class FlowKey(BaseModel):
    namespace: str = Field(max_length=256, pattern=r"^[^\x00]*$")
    id: str = Field(max_length=256, pattern=r"^[^\x00]*$")


def with_disabled(source: str, disabled: bool) -> str:
    """The flow's source with its top-level `disabled:` set (Kestra edits the source the same way)."""
    line = f"disabled: {'true' if disabled else 'false'}"
    if _DISABLED_LINE.search(source):
        return _DISABLED_LINE.sub(line, source, count=1)
    return source.rstrip("\n") + "\n" + line + "\n"


def _by_ids(eng: Engine, tenant: str, keys: list[FlowKey], principal: Principal, permission: Permission) -> list[Any]:
    rows = []
    with eng.sessions() as session:
        for key in keys:
            if not allowed(principal, Permission.FLOW_READ, key.namespace):
                continue  # invisible flows are skipped like missing ones
            require(principal, permission, key.namespace)
            row = store.latest_flow(session, tenant, key.namespace, key.id)
            if row is not None and not row.deleted:
                rows.append(row)
    return rows


def _by_query(eng: Engine, tenant: str, request: Request, principal: Principal, permission: Permission) -> list[Any]:
    search = parse_search(request.query_params, FLOW_FIELDS, page=1, size=1000, sort=[])
    search = replace(search, size=_MAX_FLOWS, visible_prefixes=prefixes(principal, Permission.FLOW_READ))
    with eng.sessions() as session:
        rows, _ = store_search.search_flows(session, tenant, search)
    for row in rows:
        require(principal, permission, row.namespace)
    return list(rows)


def _toggle(eng: Engine, rows: list[Any], disabled: bool, who: str) -> dict[str, int]:
    count = 0
    for row in rows:
        if bool(row.document.get("disabled", False)) != disabled:
            eng.deploy_flow(with_disabled(row.source, disabled), actor=who)
            count += 1
    return {"count": count}


@router.post("/flows/enable/by-ids")
@router.post("/flows/disable/by-ids")
def toggle_by_ids(
    request: Request,
    keys: list[FlowKey],
    tenant: TenantDep,
    principal: PrincipalDep,
    eng: EngineDep,
    who: ActorDep,
) -> dict[str, int]:
    disabled = "/disable/" in request.url.path
    entry = note(
        request,
        "flow.disable" if disabled else "flow.enable",
        subject=",".join(f"{k.namespace}.{k.id}" for k in keys)[:600],
    )
    result = _toggle(eng, _by_ids(eng, tenant, keys, principal, Permission.FLOW_WRITE), disabled, who)
    entry.audited = True
    return result


@router.post("/flows/enable/by-query")
@router.post("/flows/disable/by-query")
def toggle_by_query(
    request: Request,
    tenant: TenantDep,
    principal: PrincipalDep,
    eng: EngineDep,
    who: ActorDep,
) -> dict[str, int]:
    disabled = "/disable/" in request.url.path
    entry = note(request, "flow.disable" if disabled else "flow.enable", subject=str(request.url.query)[:600])
    result = _toggle(eng, _by_query(eng, tenant, request, principal, Permission.FLOW_WRITE), disabled, who)
    entry.audited = True
    return result


def _export(rows: list[FlowRevisionRow], request: Request, format: str | None) -> Response:
    wants_yaml = format == "yaml" or "yaml" in request.headers.get("accept", "")
    if wants_yaml:
        body = "\n---\n".join(r.source.strip("\n") for r in rows) + ("\n" if rows else "")
        return Response(body, media_type="application/x-yaml")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for row in rows:
            archive.writestr(f"{row.namespace}.{row.flow_id}.yml", row.source)
    return Response(
        buffer.getvalue(),
        media_type="application/octet-stream",
        headers={"Content-Disposition": 'attachment; filename="flows.zip"'},
    )


@router.get("/flows/export/by-query", response_class=Response)
def export_by_query(
    request: Request,
    tenant: TenantDep,
    principal: PrincipalDep,
    eng: EngineDep,
    format: str | None = Query(default=None, pattern="^(zip|yaml)$"),
) -> Response:
    """A zip of `<namespace>.<id>.yml` files (Kestra's form), or multi-document YAML with `format=yaml`."""
    return _export(_by_query(eng, tenant, request, principal, Permission.FLOW_READ), request, format)


@router.post("/flows/export/by-ids", response_class=Response)
def export_by_ids(
    request: Request,
    keys: list[FlowKey],
    tenant: TenantDep,
    principal: PrincipalDep,
    eng: EngineDep,
    format: str | None = Query(default=None, pattern="^(zip|yaml)$"),
) -> Response:
    note(request, "flow.export", read_only=True)
    return _export(_by_ids(eng, tenant, keys, principal, Permission.FLOW_READ), request, format)


def _documents(raw: bytes, name: str) -> list[tuple[str, str]]:
    """(where, YAML text) for each flow in an upload: a zip of .yml/.yaml files, or (multi-document) YAML."""
    if raw.startswith(_ZIP_MAGIC):
        try:
            with zipfile.ZipFile(io.BytesIO(raw)) as archive:
                members = [m for m in archive.infolist() if m.filename.endswith((".yml", ".yaml")) and not m.is_dir()]
                if len(members) > _MAX_FLOWS:
                    raise QueryInvalid("fileUpload", f"more than {_MAX_FLOWS} flows")
                return _unzipped(archive, members)
        except (zipfile.BadZipFile, UnicodeDecodeError, ValueError) as e:
            raise QueryInvalid("fileUpload", f"not a readable zip of UTF-8 YAML files: {e}") from e
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise QueryInvalid("fileUpload", "not UTF-8 YAML") from e
    return [(f"{name}#{i}", doc) for i, doc in enumerate(split_documents(text)) if doc.strip()]


def _unzipped(archive: zipfile.ZipFile, members: list[zipfile.ZipInfo]) -> list[tuple[str, str]]:
    """Each member's text, reading no more than _MAX_UNZIPPED_BYTES in all (sizes in the zip's headers are the
    uploader's word: the reads themselves are counted)."""
    left = _MAX_UNZIPPED_BYTES
    documents = []
    for member in members:
        with archive.open(member) as stream:
            content = stream.read(left + 1)
        left -= len(content)
        if left < 0:
            raise QueryInvalid("fileUpload", f"the zip unpacks to more than {_MAX_UNZIPPED_BYTES} bytes")
        documents.append((member.filename, content.decode("utf-8")))
    return documents


@router.post(
    "/flows/import",
    openapi_extra={
        "requestBody": {
            "content": {
                "multipart/form-data": {
                    "schema": {"type": "object", "properties": {"fileUpload": {"type": "string", "format": "binary"}}}
                },
                "application/x-yaml": {"schema": {"type": "string"}},
            }
        }
    },
)
async def import_flows(
    request: Request,
    principal: PrincipalDep,
    eng: EngineDep,
    who: ActorDep,
    failOnError: bool = False,
) -> list[str]:
    """Deploy every flow of a zip or YAML upload; answers the ones that could not be imported (Kestra's list)."""
    entry = note(request, "flow.import")
    documents: list[tuple[str, str]] = []
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        form = await request.form()
        for _, part in form.multi_items():
            if isinstance(part, UploadFile):
                documents.extend(_documents(await part.read(), part.filename or "upload"))
            else:
                documents.extend(_documents(part.encode("utf-8"), "form"))
    else:
        documents = _documents((await yaml_body(request)).encode("utf-8"), "body")

    def deploy_all() -> list[str]:
        failed: list[str] = []
        for where, source in documents:
            try:
                flow = parse_flow(source)
                require(principal, Permission.FLOW_WRITE, flow.namespace)
                eng.deploy_flow(source, actor=who)
            except FlowInvalid as e:
                if failOnError:
                    raise FlowInvalid(e.errors, f"{where}: {e.message}") from e
                failed.append(f"{where}: {e.message}")
        return failed

    failed = await run_in_threadpool(deploy_all)
    entry.audited = not failed
    return failed


@router.delete("/flows/delete/by-ids")
def delete_by_ids(
    request: Request,
    keys: list[FlowKey],
    tenant: TenantDep,
    principal: PrincipalDep,
    eng: EngineDep,
    who: ActorDep,
) -> dict[str, int]:
    entry = note(request, "flow.delete")
    rows = _by_ids(eng, tenant, keys, principal, Permission.FLOW_WRITE)
    for row in rows:
        eng.delete_flow(row.namespace, row.flow_id, actor=who)
    entry.audited = True
    return {"count": len(rows)}


@router.delete("/flows/delete/by-query")
def delete_by_query(
    request: Request,
    tenant: TenantDep,
    principal: PrincipalDep,
    eng: EngineDep,
    who: ActorDep,
) -> dict[str, int]:
    entry = note(request, "flow.delete", subject=str(request.url.query)[:600])
    rows = _by_query(eng, tenant, request, principal, Permission.FLOW_WRITE)
    for row in rows:
        eng.delete_flow(row.namespace, row.flow_id, actor=who)
    entry.audited = True
    return {"count": len(rows)}
