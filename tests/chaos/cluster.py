"""A Chorus cluster of real processes on servers of its own: PostgreSQL, Redis (behind a stallable proxy
for the workers), one `chorus server` and a few `chorus worker` processes, each killable and restartable.

The servers are throwaway embedded ones on their own ports and data directories, so restarting them
never touches the machine's shared PostgreSQL and Redis.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import psycopg

from orchestrator.cli.embedded import EmbeddedServer, free_port, start_postgres, start_redis
from orchestrator.cli.processes import stop_process, worker_command
from orchestrator.store.database import make_engine, migrate
from tests.chaos.proxy import StallableProxy
from tests.harness.services import psycopg_url

#: Pools the workload uses; each worker process serves all of them.
POOLS = "control,scripts"
FAKETIME_LIBRARY = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")


@dataclass(frozen=True)
class ClusterShape:
    workers: int = 2
    concurrency: int = 6
    stale_after_s: float = 3.0
    heartbeat_interval_s: float = 1.0
    #: Wall-clock offsets (seconds) by process name (`server`, `worker-0`, ...), applied with libfaketime.
    clock_skew_s: dict[str, float] = field(default_factory=dict)


class ChaosCluster:
    """Start with `start()`, stop with `stop()`; every fault is a method."""

    def __init__(self, root: Path, shape: ClusterShape) -> None:
        self.root = root
        self.shape = shape
        self.pg_port = free_port()
        self.redis_port = free_port()
        self.api_port = free_port()
        self.postgres: EmbeddedServer | None = None
        self.redis: EmbeddedServer | None = None
        self.proxy: StallableProxy | None = None
        self.server: subprocess.Popen[bytes] | None = None
        self.workers: dict[str, subprocess.Popen[bytes]] = {}
        self.database_url = f"postgresql+psycopg://postgres@127.0.0.1:{self.pg_port}/chorus"
        self.api = httpx.Client(base_url=f"http://127.0.0.1:{self.api_port}/api/v1/main", timeout=30)

    # ---- life cycle --------------------------------------------------------------------------------

    def start(self) -> None:
        self.postgres = start_postgres(self.root / "pg", port=self.pg_port, database="chorus", durable=False)
        self._start_redis()
        self.proxy = StallableProxy(self.redis_port)
        db = make_engine(self.database_url, pool_size=1)
        try:
            migrate(db)
        finally:
            db.dispose()
        self.start_server()
        for index in range(self.shape.workers):
            self.start_worker(f"worker-{index}")

    def stop(self) -> None:
        for name in list(self.workers):
            self._stop(self.workers.pop(name))
        if self.server is not None:
            self._stop(self.server)
        self.api.close()
        if self.proxy is not None:
            self.proxy.close()
        for server in (self.redis, self.postgres):
            if server is not None:
                server.stop()

    def _env(self, name: str, broker_port: int) -> dict[str, str]:
        broker = f"redis://127.0.0.1:{broker_port}/0"
        env = {
            **os.environ,
            "CHORUS_DATABASE_URL": self.database_url,
            "CHORUS_BROKER_URL": broker,
            "CHORUS_RESULT_BACKEND": broker,
            "CHORUS_PORT": str(self.api_port),
            "CHORUS_DATA_DIR": str(self.root / "data"),
            "CHORUS_SWEEP_INTERVAL_S": "0.5",
            "CHORUS_STALE_AFTER_S": str(self.shape.stale_after_s),
            "CHORUS_HEARTBEAT_INTERVAL_S": str(self.shape.heartbeat_interval_s),
            "CHORUS_WORKER_CONCURRENCY": str(self.shape.concurrency),
            "CHORUS_METRICS_PORT": "0",
            "CHORUS_LOG_LEVEL": "WARNING",
        }
        skew = self.shape.clock_skew_s.get(name)
        if skew:
            # The whole process (Python's datetime and time.time, C libraries) sees a shifted wall clock;
            # monotonic clocks stay true, as NTP-skewed hosts do.
            env |= {
                "LD_PRELOAD": str(FAKETIME_LIBRARY),
                "FAKETIME": f"{skew:+g}s",
                "FAKETIME_DONT_FAKE_MONOTONIC": "1",
                "FAKETIME_NO_CACHE": "1",
            }
        return env

    def _log(self, name: str) -> int:
        return os.open(self.root / f"{name}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def _spawn(self, name: str, argv: list[str], broker_port: int) -> subprocess.Popen[bytes]:
        log = self._log(name)
        try:
            return subprocess.Popen(
                argv, env=self._env(name, broker_port), stdout=log, stderr=log, start_new_session=True
            )
        finally:
            os.close(log)

    def start_server(self) -> None:
        # The controller reaches Redis directly; only the workers go through the proxy.
        argv = [sys.executable, "-m", "orchestrator.cli", "server"]
        self.server = self._spawn("server", argv, self.redis_port)
        self.wait_api_up()

    def start_worker(self, name: str) -> None:
        assert self.proxy is not None
        self.workers[name] = self._spawn(name, worker_command(POOLS, self.shape.concurrency), self.proxy.port)

    def wait_api_up(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.server is not None and self.server.poll() is not None:
                raise RuntimeError(f"chorus server exited with {self.server.returncode}; see {self.root}/server.log")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{self.api_port}/health", timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"the API did not answer within {timeout_s}s")

    @staticmethod
    def _stop(process: subprocess.Popen[bytes]) -> None:
        stop_process(process, timeout_s=10)

    # ---- faults --------------------------------------------------------------------------------------

    def kill_worker(self, name: str) -> set[int]:
        """SIGKILL a worker's whole process tree (a container dying): returns every pid that died."""
        process = self.workers.pop(name)
        # Freeze the tree before killing it: a process listed, then killed, may have forked a script in
        # between, which would live on as an orphan and finish a side effect nobody can attribute.
        pids: set[int] = set()
        while fresh := _tree(process.pid) - pids:
            for pid in fresh:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGSTOP)
            pids |= fresh
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        process.wait(10)
        return pids

    def kill_server(self) -> None:
        assert self.server is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.server.pid, signal.SIGKILL)
        self.server.wait(10)

    def restart_redis_empty(self) -> None:
        """SIGKILL Redis and start an empty one on the same port: every key (queues, unacked, chords) is lost."""
        assert self.redis is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.redis.pid, signal.SIGKILL)
        self.redis.stop()
        shutil.rmtree(self.root / "redis", ignore_errors=True)
        self._start_redis()

    def _start_redis(self) -> None:
        self.redis = start_redis(self.root / "redis", port=self.redis_port, persist=False)

    def stop_postgres(self) -> None:
        assert self.postgres is not None
        self.postgres.stop()

    def start_postgres(self) -> None:
        self.postgres = start_postgres(self.root / "pg", port=self.pg_port, database="chorus", durable=False)

    # ---- reading the truth ---------------------------------------------------------------------------

    def sql(self, query: str, *params: object) -> list[tuple[object, ...]]:
        with psycopg.connect(psycopg_url(self.database_url), connect_timeout=5) as conn:
            return list(conn.execute(query, params).fetchall())

    def alive(self) -> dict[str, bool]:
        processes = {"server": self.server, **self.workers}
        return {name: p is not None and p.poll() is None for name, p in processes.items()}


def _tree(pid: int) -> set[int]:
    try:
        root = psutil.Process(pid)
        return {pid, *(child.pid for child in root.children(recursive=True))}
    except psutil.NoSuchProcess:
        return {pid}
