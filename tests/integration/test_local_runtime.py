"""`runtime.json`: what a running `chorus local` tells the commands run beside it, and how a stale one is told."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.cli.local_runtime import (
    RUNTIME_FILE,
    LocalRuntime,
    read_runtime,
    remove_runtime,
    this_process_started_at,
    write_runtime,
)
from orchestrator.core.errors import ConfigurationError


def _runtime(pid: int, started_at: float, data_dir: Path) -> LocalRuntime:
    return LocalRuntime(
        pid=pid, started_at=started_at, data_dir=str(data_dir), api_url="http://127.0.0.1:1/api/v1/main",
        console_url="http://127.0.0.1:1/ui", metrics_url="http://127.0.0.1:1/metrics",
        database_url="postgresql+psycopg://postgres@127.0.0.1:2/chorus", broker_url="redis://127.0.0.1:3/0",
        result_backend="redis://127.0.0.1:3/0",
    )  # fmt: skip


def _gone_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_the_running_process_file_is_private_and_read_back(tmp_path: Path) -> None:
    written = _runtime(os.getpid(), this_process_started_at(), tmp_path)

    path = write_runtime(tmp_path, written)

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_runtime(tmp_path, required=True) == written
    remove_runtime(tmp_path, os.getpid())
    assert not path.exists()


def test_a_file_left_by_a_killed_run_is_refused_when_named_and_ignored_otherwise(tmp_path: Path) -> None:
    write_runtime(tmp_path, _runtime(_gone_pid(), 0.0, tmp_path))

    with pytest.raises(ConfigurationError) as caught:
        read_runtime(tmp_path, required=True)

    assert "no longer running" in caught.value.message and str(tmp_path / RUNTIME_FILE) in caught.value.message
    assert read_runtime(tmp_path, required=False) is None


def test_a_reused_pid_is_not_taken_for_the_run(tmp_path: Path) -> None:
    # Our pid, but another start time: the run that wrote the file is gone and its pid now names us.
    write_runtime(tmp_path, _runtime(os.getpid(), this_process_started_at() - 3600, tmp_path))

    assert read_runtime(tmp_path, required=False) is None
