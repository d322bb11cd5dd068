"""The test harness's cluster: a worker it starts dies with the test process, however that process ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil

from tests.harness.waiting import wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]

# Plays a pytest session: starts a real worker through the harness, says its pid, then waits to be killed.
PARENT = """
import sys, time
from tests.harness.cluster import Cluster
cluster = Cluster({"CHORUS_DATABASE_URL": sys.argv[1], "CHORUS_BROKER_URL": sys.argv[2], "CHORUS_METRICS_PORT": "0"})
worker = cluster.start_worker("control", concurrency=2)
print(worker.pid, flush=True)
time.sleep(120)
"""


def _alive(process: psutil.Process) -> bool:
    try:
        return bool(process.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def test_a_worker_started_by_the_harness_dies_with_its_test_process_even_on_sigkill(
    database_url: str, idle_broker_url: str
) -> None:
    python_path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, database_url, idle_broker_url],
        env={**os.environ, "PYTHONPATH": python_path},
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    family: list[psutil.Process] = []
    try:
        assert parent.stdout is not None
        worker = psutil.Process(int(parent.stdout.readline()))
        # The worker's pool processes are up once it has forked them: the whole tree is there to watch.
        wait_until(lambda: len(worker.children()) >= 2, timeout_s=60, message="the worker's pool processes")
        family = [worker, *worker.children(recursive=True)]

        os.kill(parent.pid, signal.SIGKILL)  # no cleanup runs: what an interrupted CI job or `kill -9` does
        parent.wait(10)

        wait_until(lambda: not any(_alive(p) for p in family), timeout_s=15, message="the worker and its pool gone")
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()
        for process in family:  # a failing test must not leave a worker on the broker database
            if _alive(process):
                process.kill()
