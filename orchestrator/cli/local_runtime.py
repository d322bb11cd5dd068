"""What a running `chorus local` tells the commands run beside it: `runtime.json` in its data directory.

`chorus local` writes the file (mode 0600: a URL given in CHORUS_DATABASE_URL may carry a password) once its
servers are up and removes it when it stops; `chorus user|token|audit|retry|flower` read it to reach the same
database and broker. A file whose process is gone (a killed run) is recognised by its pid and start time.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import psutil
from pydantic import BaseModel, ConfigDict

from orchestrator.core.errors import ConfigurationError

RUNTIME_FILE = "runtime.json"


class LocalRuntime(BaseModel):
    """Where the pieces of one `chorus local` run are (the file's schema)."""

    model_config = ConfigDict(frozen=True)

    pid: int
    started_at: float  #: the process's start time (psutil), so a reused pid is not taken for this run
    data_dir: str
    api_url: str
    console_url: str
    metrics_url: str
    database_url: str
    broker_url: str
    result_backend: str

    def is_running(self) -> bool:
        try:
            return bool(abs(psutil.Process(self.pid).create_time() - self.started_at) < 1)
        except psutil.Error:
            return False


def this_process_started_at() -> float:
    return float(psutil.Process().create_time())


def write_runtime(data_dir: Path, runtime: LocalRuntime) -> Path:
    """Write `runtime.json` atomically with mode 0600 (created so, never widened first)."""
    path = data_dir / RUNTIME_FILE
    staging = data_dir / f".{RUNTIME_FILE}.{os.getpid()}"
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(runtime.model_dump_json(indent=2) + "\n")
    staging.replace(path)
    return path


def remove_runtime(data_dir: Path, pid: int) -> None:
    """Remove `runtime.json` if it is this run's (a newer run on the same directory may have replaced it)."""
    path = data_dir / RUNTIME_FILE
    with contextlib.suppress(OSError, ValueError):
        if json.loads(path.read_text(encoding="utf-8")).get("pid") == pid:
            path.unlink()


def read_runtime(data_dir: Path, *, required: bool) -> LocalRuntime | None:
    """The runtime of the `chorus local` running on `data_dir`; None if there is none and it is not `required`.

    With `required` (the user named the data directory), a missing or stale file is an error naming the fix.
    """
    path = data_dir.expanduser().resolve() / RUNTIME_FILE
    try:
        runtime = LocalRuntime.model_validate_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        if not required:
            return None
        raise ConfigurationError(
            "--data-dir", f"no `chorus local` is running on {path.parent} (no {RUNTIME_FILE}); start it first"
        ) from e
    except (OSError, ValueError) as e:
        raise ConfigurationError("--data-dir", f"cannot read {path}: {e}") from e
    if runtime.is_running():
        return runtime
    if required:
        raise ConfigurationError(
            "--data-dir",
            f"the `chorus local` that wrote {path} (pid {runtime.pid}) is no longer running; start it again",
        )
    return None
