"""The worker group of `chorus local`: recorded in its data directory, so a later run can stop one left behind."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from pathlib import Path

import psutil

from orchestrator.cli.processes import WORKER_APP

logger = logging.getLogger(__name__)

WORKER_PID_FILE = "worker.pid"


def record_worker(data_dir: Path, pid: int) -> None:
    """Note the worker (pid, start time) and ourselves, so that a later run can stop it if it outlived us."""
    started = psutil.Process(pid).create_time()
    (data_dir / WORKER_PID_FILE).write_text(f"{pid} {started} {os.getpid()}\n")


def forget_worker(data_dir: Path) -> None:
    """Remove the record once this run has stopped its worker."""
    (data_dir / WORKER_PID_FILE).unlink(missing_ok=True)


def stop_stale_worker(data_dir: Path) -> None:
    """Kill the worker group an earlier run recorded, if it is still running and that run is gone.

    The lifeline makes a worker die with its `chorus local`; this covers a worker that somehow survived (an old
    Chorus, a stuck process), so that it can never consume this run's queues.
    """
    path = data_dir / WORKER_PID_FILE
    try:
        pid_text, started_text, parent_text = path.read_text().split()
        worker = psutil.Process(int(pid_text))
        same = abs(worker.create_time() - float(started_text)) < 1 and WORKER_APP in worker.cmdline()
        orphaned = worker.ppid() != int(parent_text)
    except (OSError, ValueError, psutil.Error):
        path.unlink(missing_ok=True)
        return
    if not (same and orphaned):
        return
    logger.warning("stopping worker group (pid %d) left running by an earlier chorus local", worker.pid)
    family = [worker, *worker.children(recursive=True)]
    with contextlib.suppress(ProcessLookupError):
        os.killpg(worker.pid, signal.SIGKILL)  # started in a session of its own: its group is its pool
    for process in family:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(family, timeout=5)
    path.unlink(missing_ok=True)
