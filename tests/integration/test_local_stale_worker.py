"""`chorus local` at start stops a worker group an earlier run recorded and left behind, and only that."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from orchestrator.cli.local_worker import record_worker, stop_stale_worker
from orchestrator.cli.processes import WORKER_APP

# Looks like a worker to the check (its command line names the worker app) and has a child, like a pool.
FAKE_WORKER = (
    "import subprocess, sys, time\n"
    "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
    "time.sleep(60)\n"
)


@pytest.fixture
def fake_worker() -> Iterator[subprocess.Popen[bytes]]:
    worker = subprocess.Popen([sys.executable, "-c", FAKE_WORKER, WORKER_APP], start_new_session=True)
    deadline = time.monotonic() + 10
    while not psutil.Process(worker.pid).children() and time.monotonic() < deadline:
        time.sleep(0.02)
    yield worker
    if worker.poll() is None:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()


def _gone(process: psutil.Process) -> bool:
    try:
        return bool(process.status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


def test_a_worker_whose_run_is_gone_is_killed_with_its_pool(
    tmp_path: Path, fake_worker: subprocess.Popen[bytes]
) -> None:
    family = [psutil.Process(fake_worker.pid), *psutil.Process(fake_worker.pid).children()]
    started = psutil.Process(fake_worker.pid).create_time()
    # Recorded by a run whose pid is not the worker's parent any more (that run was killed).
    (tmp_path / "worker.pid").write_text(f"{fake_worker.pid} {started} {os.getpid() + 1_000_000}\n")

    stop_stale_worker(tmp_path)

    fake_worker.wait(5)
    assert all(_gone(p) for p in family)
    assert not (tmp_path / "worker.pid").exists()


def test_the_worker_of_a_live_run_is_left_alone(tmp_path: Path, fake_worker: subprocess.Popen[bytes]) -> None:
    record_worker(tmp_path, fake_worker.pid)  # we are its parent, alive

    stop_stale_worker(tmp_path)

    assert fake_worker.poll() is None
