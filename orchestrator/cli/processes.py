"""The processes `chorus` starts: the API's uvicorn config and Celery workers, named by import string.

`chorus server|worker` and `chorus local` share these, so a local run starts exactly the cluster's
processes; the tests and the load tests start their clusters with them too.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import uvicorn

from orchestrator.lifeline import parent_death_signal
from orchestrator.settings import Settings

#: By import string, so that the static import graph stays one-way (the cli never imports api or workers).
API_APP = "api.app:create_app"
WORKER_APP = "workers.app"  #: also how a worker is recognised in a process listing (`celery -A workers.app`)


def api_config(settings: Settings) -> uvicorn.Config:
    """The uvicorn config of the API on `settings.host:settings.port`, built from its import string."""
    # proxy_headers=False: uvicorn would believe X-Forwarded-For from loopback; api.proxies decides instead.
    return uvicorn.Config(
        API_APP, factory=True, host=settings.host, port=settings.port, log_config=None, proxy_headers=False
    )


def worker_command(pools: str, concurrency: int, pool_impl: str = "prefork") -> list[str]:
    """The argv of a Celery worker for `pools` (also used by `chorus local` and the tests)."""
    queues = ",".join(p.strip() for p in pools.split(",") if p.strip())
    return [
        sys.executable, "-m", "celery", "-A", WORKER_APP, "worker",
        "-Q", queues, "-c", str(concurrency), "-P", pool_impl, "-n", f"{queues.replace(',', '+')}@%h",
        "--without-gossip", "--without-mingle", "-E", "-l", "INFO",
    ]  # fmt: skip


def run_worker_process(
    pools: str, settings: Settings, env: dict[str, str], *, lifeline_fd: int | None = None
) -> subprocess.Popen[bytes]:
    """Start a worker as a child process in its own process group (stopped with `stop_process`).

    With `lifeline_fd` (the read end of `orchestrator.lifeline.open_lifeline()`), the worker and everything it
    starts die when this process does, however it ends.
    """
    argv = worker_command(pools, settings.worker_concurrency, settings.worker_pool)
    if lifeline_fd is None:
        return subprocess.Popen(argv, env=env, start_new_session=True)
    return subprocess.Popen(
        argv,
        env={**env, "CHORUS_LIFELINE_FD": str(lifeline_fd)},
        start_new_session=True,
        pass_fds=(lifeline_fd,),
        # A second line of defence behind the lifeline: SIGQUIT is Celery's cold shutdown (it kills the pool).
        preexec_fn=parent_death_signal(signal.SIGQUIT),
    )


def stop_process(process: subprocess.Popen[bytes], timeout_s: float = 15) -> None:
    """Warm shutdown (SIGTERM to the group's leader), then kill the whole group if it outlives `timeout_s`.

    Only the leader is told, as Kubernetes and Docker tell only a container's first process: a Celery worker's
    pool processes die on SIGTERM (Celery resets it in them, to terminate them itself), so a SIGTERM to the
    group killed every task mid-way and orphaned its scripts, where the leader's warm shutdown lets them end
    (or hands them back after CHORUS_WORKER_DRAIN_S: workers/drain.py).
    """
    if process.poll() is not None:
        return
    try:
        os.kill(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout_s
    while process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        process.wait(5)
