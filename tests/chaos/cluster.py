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
import time
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import Popen

import httpx
import psutil
import psycopg

from orchestrator.cli.embedded import EmbeddedServer, free_port, start_postgres, start_redis
from orchestrator.store.database import make_engine, migrate
from tests.chaos.proxy import StallableProxy
from tests.harness.cluster import Cluster, release
from tests.harness.services import psycopg_url

#: Pools the workload uses; each worker process serves all of them.
POOLS = "control,scripts"
FAKETIME_LIBRARY = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")
#: Loaded ahead of libfaketime, so that only the wall clock is skewed: libfaketime 0.9.10 turns every monotonic
#: `clock_nanosleep` (Python's `time.sleep`) into EINVAL, and its condition-variable wrappers deadlock a child
#: forked while another thread was in one (a script's subprocess hung before exec); see the source's comment.
MONOTONIC_SHIM_SOURCE = Path(__file__).with_name("faketime_shim.c")


def monotonic_shim(directory: Path) -> Path:
    """Compile the shim into `directory` (once per cluster): a C compiler is needed for the clock-skew shape."""
    library = directory / "faketime_shim.so"
    if not library.exists():
        versions = MONOTONIC_SHIM_SOURCE.with_suffix(".map")
        command = ["cc", "-shared", "-fPIC", "-O2", "-o", str(library), str(MONOTONIC_SHIM_SOURCE), "-ldl"]
        subprocess.run([*command, f"-Wl,--version-script={versions}"], check=True)
        library.chmod(0o755)
    return library


@dataclass(frozen=True)
class ClusterShape:
    workers: int = 2
    concurrency: int = 6
    stale_after_s: float = 3.0
    heartbeat_interval_s: float = 1.0
    #: CHORUS_WORKER_DRAIN_S of the workers (None: a stopped worker waits for its task runs however long).
    drain_s: float | None = None
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
        self.database_url = f"postgresql+psycopg://postgres@127.0.0.1:{self.pg_port}/chorus"
        #: The server and workers; each gets its environment from `_env` (its broker port, its clock).
        self.processes = Cluster({}, port=self.api_port, log_dir=root)
        self.api = httpx.Client(base_url=self.processes.api_url, timeout=30)

    @property
    def server(self) -> Popen[bytes] | None:
        return self.processes.server

    @property
    def workers(self) -> dict[str, Popen[bytes]]:
        return self.processes.workers

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
        self.processes.close(timeout_s=10)
        self.api.close()
        if self.proxy is not None:
            self.proxy.close()
        for server in (self.redis, self.postgres):
            if server is not None:
                server.stop()

    def _env(self, name: str, broker_port: int) -> dict[str, str]:
        broker = f"redis://127.0.0.1:{broker_port}/0"
        env = {
            "CHORUS_DATABASE_URL": self.database_url,
            "CHORUS_BROKER_URL": broker,
            "CHORUS_RESULT_BACKEND": broker,
            "CHORUS_DATA_DIR": str(self.root / "data"),
            "CHORUS_SWEEP_INTERVAL_S": "0.5",
            "CHORUS_STALE_AFTER_S": str(self.shape.stale_after_s),
            "CHORUS_HEARTBEAT_INTERVAL_S": str(self.shape.heartbeat_interval_s),
            "CHORUS_WORKER_CONCURRENCY": str(self.shape.concurrency),
            "CHORUS_METRICS_PORT": "0",
            "CHORUS_LOG_LEVEL": "WARNING",
        }
        if self.shape.drain_s is not None:
            env["CHORUS_WORKER_DRAIN_S"] = str(self.shape.drain_s)
        skew = self.shape.clock_skew_s.get(name)
        if skew:
            # The whole process (Python's datetime and time.time, C libraries) sees a shifted wall clock;
            # monotonic clocks stay true, as NTP-skewed hosts do.
            env |= {
                "LD_PRELOAD": f"{monotonic_shim(self.root)}:{FAKETIME_LIBRARY}",
                "FAKETIME": f"{skew:+g}s",
                "FAKETIME_DONT_FAKE_MONOTONIC": "1",
                "FAKETIME_NO_CACHE": "1",
            }
        return env

    def start_server(self) -> None:
        # The controller reaches Redis directly; only the workers go through the proxy.
        self.processes.start_server(env=self._env("server", self.redis_port))

    def start_worker(self, name: str) -> None:
        assert self.proxy is not None
        env = self._env(name, self.proxy.port)
        self.processes.start_worker(POOLS, name=name, concurrency=self.shape.concurrency, env=env)

    # ---- faults --------------------------------------------------------------------------------------

    def worker_pids(self, name: str) -> set[int]:
        """The pids of a worker's process tree (its main process, pool processes and their scripts)."""
        return _tree(self.workers[name].pid)

    def stop_worker(self, name: str, timeout_s: float = 30) -> float:
        """SIGTERM a worker, as a scale-down or a rollout does, and wait for its warm shutdown: the seconds it took
        (a worker still alive after `timeout_s` is killed, as the grace period's end would)."""
        started = time.monotonic()
        self.processes.stop_worker(name, timeout_s)
        return time.monotonic() - started

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
        release(process)  # after the freeze: its lifeline closing would make it kill its own tree meanwhile
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
