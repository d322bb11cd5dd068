"""Internal storage on local disk: files behind Kestra's `kestra:///...` URIs.

Uploaded FILE inputs, downloads and tasks' output files live under `<data_dir>/storage/`, at the path of
their URI (`/<namespace as dirs>/<flow>/executions/<execution>/...`). As in Kestra's `StorageContext`, the
flow and task ids in a path are slugs (`Slugify.of`: `each_split` is `each-split`), so a URI has the shape
Kestra's own tests and users' expressions expect. This serves `chorus local` and a cluster sharing a
volume; an object store would sit behind these same functions.
"""

from __future__ import annotations

import re
import shutil
import unicodedata
from pathlib import Path, PurePosixPath

from orchestrator.core.errors import ChorusError

SCHEME = "kestra://"


class StorageError(ChorusError):
    """Raised when a storage URI or file name is unusable (outside the store, not a kestra:// URI)."""


def slug(text: str) -> str:
    """Kestra's `Slugify.of`: whitespace to '-', only word characters and '-', '_' to '-', lower case."""
    text = unicodedata.normalize("NFD", re.sub(r"\s", "-", text))
    text = re.sub(r"[^\w-]", "", text, flags=re.ASCII).replace("_", "-")
    return re.sub("-{2,}", "-", text).strip("-").lower()


def flow_prefix(namespace: str, flow_id: str) -> PurePosixPath:
    return PurePosixPath("/", *namespace.split("."), slug(flow_id))


def execution_prefix(namespace: str, flow_id: str, execution_id: str) -> PurePosixPath:
    return flow_prefix(namespace, flow_id) / "executions" / execution_id


def task_run_prefix(namespace: str, flow_id: str, execution_id: str, task_id: str, task_run_id: str) -> PurePosixPath:
    """Kestra's `/<namespace>/<flow>/executions/<execution>/tasks/<task>/<task run>` of a task run's files."""
    return execution_prefix(namespace, flow_id, execution_id) / "tasks" / slug(task_id) / task_run_id


def safe_name(name: str) -> PurePosixPath:
    """A relative file name that stays where it is put (no absolute path, no `..`)."""
    relative = PurePosixPath(name)
    if relative.is_absolute() or ".." in relative.parts or not relative.parts:
        raise StorageError(f"file name {name!r} must be a relative path without '..'")
    return relative


def write(data_dir: Path, uri_path: PurePosixPath, source: bytes | Path) -> str:
    """Keep `source` at `uri_path` in the store; return its `kestra:///...` URI."""
    target = data_dir / "storage" / uri_path.relative_to("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(source, bytes):
        target.write_bytes(source)
    else:
        shutil.copyfile(source, target)
    return f"{SCHEME}{uri_path}"


def input_file_uri_path(namespace: str, flow_id: str, execution_id: str, input_id: str, filename: str) -> PurePosixPath:
    return execution_prefix(namespace, flow_id, execution_id) / "inputs" / input_id / safe_name(filename or input_id)


def belongs_to(uri: str, prefix: PurePosixPath) -> bool:
    """Whether a `kestra:///...` URI names a file under `prefix` (an execution's, say)."""
    return PurePosixPath(uri.removeprefix(SCHEME)).is_relative_to(prefix)


def local_path(data_dir: Path, uri: str) -> Path:
    """The file behind a `kestra:///...` URI (for readers on the same machine or volume)."""
    if not uri.startswith(SCHEME + "/"):
        raise StorageError(f"not an internal storage URI: {uri!r}")
    path = PurePosixPath(uri.removeprefix(SCHEME))
    if ".." in path.parts:
        raise StorageError(f"invalid internal storage URI: {uri!r}")
    return data_dir / "storage" / path.relative_to("/")
