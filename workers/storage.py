"""Task output files in internal storage (`orchestrator.internal_storage`), at Kestra's per-task-run paths.

A file a task produces (a download, a script's output files) is kept at
`kestra:///<namespace as dirs>/<flow>/executions/<execution>/tasks/<task>/<task run>/<file>` (flow and task
ids as Kestra's slugs).
"""

from __future__ import annotations

from pathlib import Path

from orchestrator import internal_storage as storage
from orchestrator.core.errors import TaskFailed
from orchestrator.engine import ClaimedTaskRun

SCHEME = storage.SCHEME


def store_file(data_dir: Path, claimed: ClaimedTaskRun, name: str, source: bytes | Path) -> str:
    """Keep `source` as the task run's output file `name`; return its `kestra:///...` URI."""
    at = claimed.coordinates
    prefix = storage.task_run_prefix(
        claimed.flow.namespace, claimed.flow.id, at.execution_id, at.task_id, at.task_run_id
    )
    try:
        path = prefix / storage.safe_name(name)
    except storage.StorageError as e:
        raise TaskFailed(
            f"output file name {name!r} must be a relative path inside the working directory", retryable=False
        ) from e
    return storage.write(data_dir, path, source)


def local_path(data_dir: Path, uri: str) -> Path:
    """The file behind a `kestra:///...` URI (for readers on the same machine)."""
    try:
        return storage.local_path(data_dir, uri)
    except storage.StorageError as e:
        raise TaskFailed(e.message, retryable=False) from e
