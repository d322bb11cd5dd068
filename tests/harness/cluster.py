"""Start a Chorus cluster for tests: an API server and Celery workers as child processes that die with the test process.

Every suite that runs a cluster (the e2e stack, the console's, the dashboards', the chaos cluster, the load
harness) starts it here, so there is one way to pick ports, wait until it is healthy and stop its process trees.

A worker is tied to the test process the way `chorus local` ties its worker (orchestrator/lifeline.py): the
parent-death signal reaches the worker's main process, and a lifeline pipe, whose write end only this process
holds, reaches its pool processes and the commands they started. However the test process ends (Ctrl-C, SIGKILL,
a CI timeout) the kernel closes the write end and the worker stops: a worker left behind would stay attached to a
shared Redis database and take the next session's messages. Other chorus processes (server, scheduler, flower)
are direct children with nothing below them, so the parent-death signal is enough for them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from orchestrator.cli.embedded import HOST, free_port

# The one import of the CLI's process handling: when it moves, only this line changes.
from orchestrator.cli.processes import stop_process, worker_command
from orchestrator.lifeline import open_lifeline, parent_death_signal
from tests.harness.services import wait_http

__all__ = [
    "Cluster",
    "release",
    "running_cluster",
    "start_chorus",
    "start_process",
    "stop",
    "stop_all",
    "worker_command",
]

Process = subprocess.Popen[bytes]

#: Write ends of the lifelines this process holds, by the pid of the worker reading the other end.
_lifelines: dict[int, int] = {}


def start_process(argv: list[str], env: Mapping[str, str], *, log: Path | None = None, worker: bool = False) -> Process:
    """Start `argv` in a session of its own (so `stop_process` stops its whole group), dying with this process.

    With `worker`, the child also gets a lifeline (`CHORUS_LIFELINE_FD`, read by workers/app.py), so its pool
    processes and their commands die too. Output goes to `log` (appended) when given, else to ours.
    """
    output = None if log is None else os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    child_end, our_end = open_lifeline() if worker else (None, None)
    try:
        process = subprocess.Popen(
            argv,
            env={**env, "CHORUS_LIFELINE_FD": str(child_end)} if worker else dict(env),
            stdout=output,
            stderr=output,
            start_new_session=True,
            pass_fds=() if child_end is None else (child_end,),
            # SIGQUIT is Celery's cold shutdown (it kills the pool); a server or scheduler shuts down on SIGTERM.
            # The signal goes out when the starting *thread* ends: start clusters from the main thread.
            preexec_fn=parent_death_signal(signal.SIGQUIT if worker else signal.SIGTERM),
        )
    except BaseException:
        if our_end is not None:
            os.close(our_end)
        raise
    finally:
        if output is not None:
            os.close(output)
        if child_end is not None:
            os.close(child_end)  # the child has its copy
    if our_end is not None:
        _lifelines[process.pid] = our_end
    return process


def start_chorus(command: str, env: Mapping[str, str], *, log: Path | None = None) -> Process:
    """Start `chorus <command>` (server, scheduler, flower, ...) with `env`; see `start_process`."""
    return start_process([sys.executable, "-m", "orchestrator.cli", command], env, log=log)


def stop(process: Process, timeout_s: float = 15) -> None:
    """Warm shutdown of the process's group (SIGKILL after `timeout_s`), then let go of its lifeline."""
    try:
        stop_process(process, timeout_s=timeout_s)
    finally:
        release(process)


def release(process: Process) -> None:
    """Close our end of the process's lifeline (if it has one): whatever it left running dies now."""
    our_end = _lifelines.pop(process.pid, None)
    if our_end is not None:
        os.close(our_end)


def stop_all(processes: Iterable[Process], timeout_s: float = 15) -> None:
    """Stop processes in parallel: each warm shutdown may wait for its running tasks."""
    processes = list(processes)
    if len(processes) <= 1:
        for process in processes:
            stop(process, timeout_s)
        return
    with ThreadPoolExecutor(len(processes)) as pool:
        list(pool.map(lambda p: stop(p, timeout_s), processes))


class Cluster:
    """A `chorus server` and workers of given pools on a free port, configured by `env` (database, broker...).

    Use as a context manager, or call `close()`: every process it started is stopped, workers first.
    """

    def __init__(self, env: Mapping[str, str], *, port: int | None = None, log_dir: Path | None = None) -> None:
        self.port = port or free_port()
        self.env: dict[str, str] = {**os.environ, **env, "CHORUS_PORT": str(self.port)}
        self.log_dir = log_dir
        self.server: Process | None = None
        self.workers: dict[str, Process] = {}

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def api_url(self) -> str:
        """The API's base for tenant `main`, as Kestra's clients use it."""
        return f"{self.url}/api/v1/main"

    def start(self, pools: Iterable[str] = (), *, concurrency: int = 2, timeout_s: float = 60) -> Cluster:
        """Start the server and one worker per entry of `pools` ("control,io" is one worker for two queues),
        all at once, and return when the API answers /health."""
        self.start_server(wait=False)
        for pool in pools:
            self.start_worker(pool, concurrency=concurrency)
        self.wait_healthy(timeout_s)
        return self

    def start_server(self, *, env: Mapping[str, str] | None = None, wait: bool = True, timeout_s: float = 60) -> None:
        self.server = start_chorus("server", {**self.env, **(env or {})}, log=self._log("server"))
        if wait:
            self.wait_healthy(timeout_s)

    def wait_healthy(self, timeout_s: float = 60) -> None:
        """Wait until the API answers /health, failing early (with where its log is) if the server exits."""
        assert self.server is not None, "no server started"
        try:
            wait_http(f"{self.url}/health", self.server, timeout_s)
        except RuntimeError as e:
            where = f"; see {self.log_dir}/server.log" if self.log_dir else ""
            raise RuntimeError(f"chorus server: {e}{where}") from e

    def start_worker(
        self,
        pools: str,
        *,
        name: str | None = None,
        concurrency: int = 2,
        pool_impl: str = "prefork",
        env: Mapping[str, str] | None = None,
        argv: list[str] | None = None,
    ) -> Process:
        """Start a Celery worker consuming `pools` (comma-separated), registered as `name` (default: the pools).

        `argv` replaces Chorus's worker command line (the load harness's raw-Celery baseline); `env` adds to the
        cluster's. The worker is told its concurrency and pool through settings too, so it sizes its database
        pool to match.
        """
        name = name or pools
        command = argv or worker_command(pools, concurrency, pool_impl)
        sized = {"CHORUS_WORKER_CONCURRENCY": str(concurrency), "CHORUS_WORKER_POOL": pool_impl}
        process = start_process(command, {**self.env, **sized, **(env or {})}, log=self._log(name), worker=True)
        self.workers[name] = process
        return process

    def stop_worker(self, name: str, timeout_s: float = 15) -> None:
        stop(self.workers.pop(name), timeout_s)

    def kill_worker(self, name: str) -> None:
        """SIGKILL a worker's process group, as a crash would: no warm shutdown, its messages stay unacked."""
        process = self.workers.pop(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)
        release(process)

    def stop_server(self, timeout_s: float = 15) -> None:
        if self.server is not None:
            stop(self.server, timeout_s)

    def close(self, timeout_s: float = 15) -> None:
        """Stop the server and the workers, all at once: each warm shutdown waits only for its own work."""
        processes = [*self.workers.values(), *([self.server] if self.server is not None else [])]
        self.workers, self.server = {}, None
        stop_all(processes, timeout_s)

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _log(self, name: str) -> Path | None:
        return None if self.log_dir is None else self.log_dir / f"{name}.log"


@contextmanager
def running_cluster(
    env: Mapping[str, str], pools: Iterable[str], *, concurrency: int = 2, port: int | None = None
) -> Iterator[Cluster]:
    """A started cluster (server + one worker per entry of `pools`), stopped on exit."""
    with Cluster(env, port=port) as cluster:
        cluster.start(pools, concurrency=concurrency)
        yield cluster
