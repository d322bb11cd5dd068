"""Task output files: a minimal stand-in for Kestra's internal storage, on the worker's local disk.

Chorus has no internal storage service yet. Files a task produces (a download, a script's output files)
are kept under `<data_dir>/storage/`, at the path of Kestra's storage URIs
(`kestra:///<namespace as dirs>/<flow>/executions/<execution>/tasks/<task>/<task run>/<file>`), and the
task outputs that URI. This is enough for `chorus local` and a shared volume; a cluster without a shared
volume needs a real storage backend behind the same two functions.
"""

from __future__ import annotations

import shutil
from pathlib import Path, PurePosixPath

from orchestrator.core.errors import TaskFailed
from orchestrator.engine import ClaimedTaskRun

SCHEME = "kestra://"


def _run_prefix(claimed: ClaimedTaskRun) -> PurePosixPath:
    at = claimed.coordinates
    return PurePosixPath(
        "/", *claimed.flow.namespace.split("."), claimed.flow.id, "executions", at.execution_id,
        "tasks", at.task_id, at.task_run_id,
    )  # fmt: skip


def _safe_name(name: str) -> PurePosixPath:
    relative = PurePosixPath(name)
    if relative.is_absolute() or ".." in relative.parts or not relative.parts:
        raise TaskFailed(
            f"output file name {name!r} must be a relative path inside the working directory", retryable=False
        )
    return relative


def store_file(data_dir: Path, claimed: ClaimedTaskRun, name: str, source: bytes | Path) -> str:
    """Keep `source` as the task run's output file `name`; return its `kestra:///...` URI."""
    uri_path = _run_prefix(claimed) / _safe_name(name)
    target = data_dir / "storage" / uri_path.relative_to("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(source, bytes):
        target.write_bytes(source)
    else:
        shutil.copyfile(source, target)
    return f"{SCHEME}{uri_path}"


def local_path(data_dir: Path, uri: str) -> Path:
    """The file behind a `kestra:///...` URI (for readers on the same machine)."""
    if not uri.startswith(SCHEME + "/"):
        raise TaskFailed(f"not an internal storage URI: {uri!r}", retryable=False)
    path = PurePosixPath(uri.removeprefix(SCHEME))
    if ".." in path.parts:
        raise TaskFailed(f"invalid internal storage URI: {uri!r}", retryable=False)
    return data_dir / "storage" / path.relative_to("/")
