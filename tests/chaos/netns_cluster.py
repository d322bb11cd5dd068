"""A Chorus cluster across hosts on this machine: every component in a network namespace of its own.

Hosts (tests/harness/netns.py): `pg` (a throwaway PostgreSQL), `redis`, two server hosts `server-a` and
`server-b` (each a `chorus server`, whose sweeper competes for the same advisory lock, and a `chorus
scheduler`), a `control` worker host and two `scripts` worker hosts. Each reaches the others at their own
addresses, so a partition between two hosts (`lab.cut`) is exactly what it would be between machines.
The test process stays in the root namespace: it reads PostgreSQL and calls the API as an operator would.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg

from orchestrator.store.database import make_engine, migrate
from tests.chaos.cluster import _tree
from tests.harness.cluster import start_process, stop_all
from tests.harness.netns import Host, NetworkLab
from tests.harness.services import psycopg_url, wait_http

SERVERS = ("server-a", "server-b")
#: Worker hosts and the pools each consumes.
WORKERS = {"control": "control", "scripts-1": "scripts", "scripts-2": "scripts"}
API_PORT = 8080


@dataclass(frozen=True)
class Windows:
    """The stale windows, shortened so that a partition of a few seconds outlasts them."""

    stale_after_s: float = 4.0
    heartbeat_interval_s: float = 0.5
    sweep_interval_s: float = 0.5
    concurrency: int = 3

    @property
    def fence_after_s(self) -> float:
        """When a worker cut from PostgreSQL stops its attempts (workers/runtime.py `fence_after_s`)."""
        return max(self.stale_after_s - self.heartbeat_interval_s, 1.5 * self.heartbeat_interval_s)


class NetnsCluster:
    """`start()` builds the lab and every process; `stop()` tears all of it down, whatever state it is in."""

    def __init__(self, root: Path, windows: Windows = Windows()) -> None:
        self.root = root
        self.windows = windows
        self.lab = NetworkLab()
        self.password = secrets.token_urlsafe(12)
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.keep_logs = False  #: set when a scenario failed: its logs stay in `root`
        self.pg = self.lab.add_host("pg")
        self.redis = self.lab.add_host("redis")
        self.servers = {name: self.lab.add_host(name) for name in SERVERS}
        self.workers = {name: self.lab.add_host(name) for name in WORKERS}
        self.database_url = f"postgresql+psycopg://postgres@{self.pg.ip}:5432/chorus"
        self.api = self.client("server-a")

    def client(self, server: str) -> httpx.Client:
        """An API client of one server host, authenticated as the bootstrap admin."""
        base = f"http://{self.servers[server].ip}:{API_PORT}/api/v1/main"
        return httpx.Client(base_url=base, auth=("admin", self.password), timeout=30)

    # ---- life cycle --------------------------------------------------------------------------------

    def start(self) -> None:
        # PostgreSQL runs as another account when we are root: it must be able to enter the directory.
        self.root.chmod(0o711)
        self._serve("postgres", self.pg, 5432)
        self._serve("redis", self.redis, 6379)
        db = make_engine(self.database_url, pool_size=1)
        try:
            migrate(db)
        finally:
            db.dispose()
        for name, host in self.servers.items():
            self._start(name, host, [sys.executable, "-m", "orchestrator.cli", "server"])
            self._start(f"{name}-scheduler", host, [sys.executable, "-m", "orchestrator.cli", "scheduler"])
        for name in WORKERS:
            self.start_worker(name)
        for name, host in self.servers.items():
            wait_http(f"http://{host.ip}:{API_PORT}/health", self.processes[name], timeout_s=90)

    def start_worker(self, name: str) -> None:
        pools, concurrency = WORKERS[name], str(self.windows.concurrency)
        argv = [sys.executable, "-m", "celery", "-A", "workers.app", "worker", "-Q", pools, "-c", concurrency]
        argv += ["-P", "prefork", "-n", f"{name}@%h", "--without-gossip", "--without-mingle", "-E", "-l", "INFO"]
        self._start(name, self.workers[name], argv, worker=True)

    def stop(self) -> None:
        """Heal, stop every process (a partitioned one cannot finish its warm shutdown: 15 s, then killed), then
        remove the namespaces and the bridge."""
        try:
            with contextlib.suppress(Exception):
                self.lab.heal_all()
            self.api.close()
            chorus = [p for name, p in self.processes.items() if name not in ("postgres", "redis")]
            stop_all(chorus, timeout_s=15)
            stop_all([p for name, p in self.processes.items() if name in ("postgres", "redis")], timeout_s=15)
        finally:
            self.lab.close()

    def _env(self, host: Host) -> dict[str, str]:
        w = self.windows
        broker = f"redis://{self.redis.ip}:6379/0"
        return {
            **os.environ,
            "CHORUS_DATABASE_URL": self.database_url,
            # The embedded server has only its superuser; beyond loopback the server refuses it unless told.
            "CHORUS_DATABASE_ALLOW_PRIVILEGED": "true",
            "CHORUS_BROKER_URL": broker,
            "CHORUS_RESULT_BACKEND": broker,
            "CHORUS_HOST": host.ip,
            "CHORUS_PORT": str(API_PORT),
            "CHORUS_ADMIN_USERNAME": "admin",
            "CHORUS_ADMIN_PASSWORD": self.password,
            "CHORUS_DATA_DIR": str(self.root / "data"),
            "CHORUS_SWEEP_INTERVAL_S": str(w.sweep_interval_s),
            "CHORUS_STALE_AFTER_S": str(w.stale_after_s),
            "CHORUS_HEARTBEAT_INTERVAL_S": str(w.heartbeat_interval_s),
            "CHORUS_WORKER_CONCURRENCY": str(w.concurrency),
            "CHORUS_METRICS_PORT": "0",
            "CHORUS_LOG_LEVEL": "WARNING",
        }

    def _start(self, name: str, host: Host, argv: list[str], *, worker: bool = False) -> None:
        log = self.root / f"{name}.log"
        self.processes[name] = start_process([*host.prefix, *argv], self._env(host), log=log, worker=worker)

    def _serve(self, kind: str, host: Host, port: int) -> None:
        argv = [sys.executable, "-m", "tests.harness.netns_serve", kind, str(self.root / kind), host.ip, str(port)]
        argv.append(str(self.lab.network))
        self._start(kind, host, argv)
        log = self.root / f"{kind}.log"
        deadline = time.monotonic() + 60
        while "ready " not in (log.read_text() if log.exists() else ""):
            if self.processes[kind].poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{kind} did not start in {host.netns}; see {log}")
            time.sleep(0.1)

    def worker_pids(self, name: str) -> set[int]:
        """The pids of a worker host's process tree (its main process, pool processes and their scripts)."""
        return _tree(self.processes[name].pid)

    # ---- reading the truth ---------------------------------------------------------------------------

    def sql(self, query: str, *params: object) -> list[tuple[object, ...]]:
        with psycopg.connect(psycopg_url(self.database_url), connect_timeout=5) as conn:
            return list(conn.execute(query, params).fetchall())
