"""Namespace files in internal storage and Kestra's namespace tasks (UploadFiles, DownloadFiles, DeleteFiles).

A namespace file `/path/name` of namespace `a.b` is kept at `kestra:///a/b/_files/path/name`, as in Kestra;
`read('/path/name')` reads it back from any flow of that namespace.
"""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path, PurePosixPath
from typing import Any

from orchestrator import internal_storage as storage
from orchestrator.core.errors import TaskFailed
from orchestrator.core.namespace_access import Use
from orchestrator.engine.kv import check_namespace
from workers.context import TaskContext
from workers.storage import store_file
from workers.workdir import working_dir_of


def namespace_root(data_dir: Path, namespace: str) -> Path:
    """The directory holding a namespace's files."""
    return data_dir / "storage" / PurePosixPath(*check_namespace(namespace).split("."), "_files")


def namespace_file(data_dir: Path, namespace: str, path: str) -> Path:
    """The local file behind namespace file `path` (absolute or relative to the namespace root)."""
    relative = PurePosixPath(path.lstrip("/"))
    if ".." in relative.parts or not relative.parts:
        raise TaskFailed(f"invalid namespace file path {path!r}", retryable=False)
    return namespace_root(data_dir, namespace) / relative


def _namespace(ctx: TaskContext, use: Use) -> str:
    """The namespace the task acts on: its own unless `namespace` names another that grants `use`."""
    namespace = str(ctx.render(ctx.properties.get("namespace") or ctx.claimed.flow.namespace))
    ctx.guard.require(namespace, use, f"{ctx.claimed.task.type} in namespace '{namespace}'")
    return namespace


def _patterns(ctx: TaskContext) -> list[str]:
    files = ctx.render(ctx.properties.get("files"))
    if isinstance(files, str):
        return [files]
    if isinstance(files, list):
        return [str(f) for f in files]
    raise TaskFailed("The files property must be a string or a list of strings", retryable=False)


def _matches(path: str, patterns: list[str]) -> bool:
    """Kestra's `PathMatcherPredicate`: a glob (`**` across folders), or a plain path, with or without `/`."""
    bare = path.lstrip("/")
    for pattern in patterns:
        glob = pattern.removeprefix("glob:").lstrip("/")
        if bare == glob or fnmatch.fnmatchcase(bare, glob) or fnmatch.fnmatchcase(bare, glob.replace("**/", "**")):
            return True
    return False


def _all_files(root: Path) -> list[str]:
    return sorted("/" + p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def run_upload_files(ctx: TaskContext) -> dict[str, Any] | None:
    data_dir = ctx.engine.settings.data_dir
    namespace = _namespace(ctx, Use.FILE_WRITE)
    destination = str(ctx.render(ctx.properties.get("destination") or "/"))
    destination = destination if destination.startswith("/") else "/" + destination
    conflict = str(ctx.render(ctx.properties.get("conflict") or "OVERWRITE"))
    files, files_map = ctx.properties.get("files"), ctx.properties.get("filesMap")
    if files is None and files_map is None:
        raise TaskFailed("files or filesMap is required", retryable=False)
    sources: dict[str, Path] = {}
    if files is not None:
        workdir = working_dir_of(ctx.claimed)
        if workdir is None:
            raise TaskFailed("UploadFiles with `files` reads its files from a WorkingDirectory", retryable=False)
        patterns = _patterns(ctx)
        for found in _all_files(workdir):
            if _matches(found, patterns):
                sources[str(PurePosixPath(destination) / found.lstrip("/"))] = workdir / found.lstrip("/")
    if files_map is not None:
        mapping = ctx.render(files_map)
        if isinstance(mapping, str):
            mapping = json.loads(mapping)
        if not isinstance(mapping, dict) or not all(isinstance(v, str) for v in mapping.values()):
            raise TaskFailed("filesMap must be a Map<String, String>", retryable=False)
        for target, uri in mapping.items():
            source = ctx.guard.stored_file(uri, f"filesMap {target!r}")
            if source.is_file():
                sources[destination + target] = source
    uploaded: dict[str, str] = {}
    for target, source in sources.items():
        local = namespace_file(data_dir, namespace, target)
        if local.exists() and conflict != "OVERWRITE":
            if conflict == "ERROR":
                raise TaskFailed(f"File '{target}' already exists in namespace '{namespace}'", retryable=False)
            continue
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_bytes(source.read_bytes())
        uploaded[target] = f"{storage.SCHEME}/{local.relative_to(data_dir / 'storage').as_posix()}"
    ctx.log("INFO", f"uploaded {len(uploaded)} file(s) to namespace {namespace}")
    return {"files": uploaded}


def run_download_files(ctx: TaskContext) -> dict[str, Any] | None:
    data_dir = ctx.engine.settings.data_dir
    root = namespace_root(data_dir, _namespace(ctx, Use.FILE_READ))
    destination = str(ctx.render(ctx.properties.get("destination") or ""))
    patterns = _patterns(ctx)
    downloaded = {
        path: store_file(data_dir, ctx.claimed, (destination + path).lstrip("/"), root / path.lstrip("/"))
        for path in (_all_files(root) if root.is_dir() else [])
        if _matches(path, patterns)
    }
    return {"files": downloaded}


def run_delete_files(ctx: TaskContext) -> dict[str, Any] | None:
    namespace = _namespace(ctx, Use.FILE_WRITE)
    root = namespace_root(ctx.engine.settings.data_dir, namespace)
    patterns = _patterns(ctx)
    deleted = [p for p in (_all_files(root) if root.is_dir() else []) if _matches(p, patterns)]
    for path in deleted:
        (root / path.lstrip("/")).unlink()
        if ctx.properties.get("deleteParentFolder"):
            parent = (root / path.lstrip("/")).parent
            while parent != root and parent.is_dir() and not any(parent.iterdir()):
                parent.rmdir()
                parent = parent.parent
    ctx.log("INFO", f"deleted {len(deleted)} file(s) from namespace {namespace}")
    return {"files": {p: f"{storage.SCHEME}/{namespace.replace('.', '/')}/_files{p}" for p in deleted}}


HANDLERS = {"UploadFiles": run_upload_files, "DownloadFiles": run_download_files, "DeleteFiles": run_delete_files}
