"""The processes a load run measures: Chorus (`chorus server` + Celery workers) and the raw-Celery baselines.

Both run as real subprocesses on one fresh PostgreSQL database and one Redis database number claimed for
this run (the test harness's servers and claim protocol, so a load run never collides with a test session),
and are stopped by process group at the end. Worker output goes to log files under the run's directory.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from celery import Celery

from loadtests.forking import reopen_after_fork
from loadtests.raw_app import LEAN_IO_QUEUE, LEAN_QUEUE, RAW_IO_QUEUE, RAW_QUEUE, TABLE_DDL, create_raw_app
from orchestrator.celery_app import create_celery_app
from orchestrator.cli.embedded import free_port
from orchestrator.settings import Settings, load_settings
from orchestrator.store.database import make_engine, make_sessionmaker, migrate
from orchestrator.triggers.wiring import build_engine
from tests.conftest import empty_redis_db, flush_redis_db
from tests.harness import services
from tests.harness.cluster import Cluster, start_process, stop, stop_all, worker_command
from workers.attempts import LocalRunner

#: Longer than any queue wait of a scenario (the backlog's is the longest).
STALE_AFTER_S = 900
#: The baselines, in the order a scenario runs them (then Chorus): see loadtests/README.md.
BASELINES = ("raw", "lean", "durable")


@dataclass
class Services:
    """A database and a Redis database number of this run's own."""

    admin_url: str
    database_name: str
    database_url: str
    redis_url: str
    run_dir: Path

    @property
    def libpq_url(self) -> str:
        return services.psycopg_url(self.database_url)

    def connect(self) -> psycopg.Connection[tuple[Any, ...]]:
        return psycopg.connect(self.libpq_url, autocommit=True)


@contextmanager
def open_services() -> Iterator[Services]:
    admin = services.postgres_admin_url()
    name = services.unique_database_name("loadtest")
    url = services.create_database(admin, name)
    base = services.redis_url()
    # CHORUS_TEST_REDIS_DB pins a test session's database; a load run (maybe started by that session's
    # test) must claim another one.
    pinned = os.environ.get("CHORUS_TEST_REDIS_DB")
    redis_url = empty_redis_db(base, exclude=f"{base.rsplit('/', 1)[0]}/{pinned}" if pinned else None)
    run_dir = Path(tempfile.mkdtemp(prefix="chorus-loadtest-"))
    try:
        db = make_engine(url)
        try:
            migrate(db)
        finally:
            db.dispose()
        with psycopg.connect(services.psycopg_url(url), autocommit=True) as conn:
            for statement in TABLE_DDL:
                conn.execute(statement)
        yield Services(admin, name, url, redis_url, run_dir)
    finally:
        services.drop_database(admin, name)
        flush_redis_db(redis_url)


@dataclass(frozen=True)
class WorkerSpec:
    """Which worker processes a scenario needs: `instances` Celery workers of `concurrency` each."""

    queues: str = "control"
    instances: int = 1
    concurrency: int = 2
    pool_impl: str = "prefork"  #: Celery's `-P`: prefork (Chorus's default) or threads


@dataclass(frozen=True)
class Baseline:
    """One raw-Celery baseline: the app its sender uses, its two queues, and whose workers consume them."""

    name: str
    app: Celery
    queue: str  #: what Chorus's control pool is to the baseline
    io_queue: str  #: what Chorus's io pool is to the baseline (the crosspool scenario)
    #: The sender writes a row before each send, as an orchestrator records a submit (the durable baseline).
    durable: bool
    side: str  #: the worker group running its tasks: "raw" (Chorus's Celery config) or "lean"

    def queue_of(self, pool: str) -> str:
        return self.io_queue if pool == "io" else self.queue


@dataclass
class _Workers:
    spec: WorkerSpec | None = None
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)


class Stack:
    """Chorus's server and workers, the raw worker and raw HTTP app, started and stopped on demand."""

    def __init__(self, svc: Services) -> None:
        self.svc = svc
        self.raw_api_port = free_port()
        data_dir = svc.run_dir / "data"
        data_dir.mkdir(exist_ok=True)
        env = {
            "CHORUS_DATABASE_URL": svc.database_url,
            "CHORUS_BROKER_URL": svc.redis_url,
            "CHORUS_DATA_DIR": str(data_dir),
            "CHORUS_METRICS_PORT": "0",  # several worker groups on one host: no /metrics port to fight over
            # The sweeper re-dispatches an execution with no progress for this long. Its 30 s default is
            # shorter than a queued execution waits here (thousands queued on two processes), and each
            # re-dispatch adds messages to the same queue: a storm (see README, "The stale sweep").
            "CHORUS_STALE_AFTER_S": str(STALE_AFTER_S),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(Path.cwd()), os.environ.get("PYTHONPATH")])),
        }
        #: Chorus's server and both sides' workers (logs in the run's directory), dying with this process.
        self.cluster = Cluster(env, log_dir=svc.run_dir)
        self.port = self.cluster.port
        self.env = self.cluster.env
        self.settings: Settings = load_settings(
            database_url=svc.database_url, broker_url=svc.redis_url, port=self.port, data_dir=data_dir
        )
        self.chorus_celery: Celery = create_celery_app(self.settings)
        self.raw_celery: Celery = create_raw_app(self.settings)
        self.lean_celery: Celery = create_raw_app(self.settings, lean=True)
        self.baselines = {
            "raw": Baseline("raw", self.raw_celery, RAW_QUEUE, RAW_IO_QUEUE, durable=False, side="raw"),
            "lean": Baseline("lean", self.lean_celery, LEAN_QUEUE, LEAN_IO_QUEUE, durable=False, side="lean"),
            "durable": Baseline("durable", self.lean_celery, LEAN_QUEUE, LEAN_IO_QUEUE, durable=True, side="lean"),
        }
        #: The harness's pool: the engine's sessions and the durable baseline's submit rows.
        self.db = make_engine(svc.database_url, pool_size=8)
        reopen_after_fork(self.db)  # forked submitters (measure.submit_all) open their own connections
        #: The harness submits executions through the engine, as the API does (minus HTTP): with the API's
        #: local runner, so the leading pure control work of an execution runs in its submit's transaction.
        self.engine = build_engine(
            self.settings, make_sessionmaker(self.db), self.chorus_celery, local_runner=LocalRunner()
        )
        self._raw_api: subprocess.Popen[bytes] | None = None
        self._workers = {"chorus": _Workers(), "raw": _Workers(), "lean": _Workers()}

    # ---- processes ------------------------------------------------------------------------------

    def start_server(self) -> None:
        self.cluster.start_server()

    def start_raw_api(self) -> None:
        argv = [
            sys.executable, "-m", "uvicorn", "--factory", "loadtests.raw_api:create_app",
            "--host", "127.0.0.1", "--port", str(self.raw_api_port), "--log-level", "warning",
        ]  # fmt: skip
        self._raw_api = start_process(argv, self.env, log=self.svc.run_dir / "raw-api.log")
        services.wait_http(f"http://127.0.0.1:{self.raw_api_port}/health", self._raw_api, timeout_s=60)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v1/main"

    @property
    def raw_api_url(self) -> str:
        return f"http://127.0.0.1:{self.raw_api_port}"

    def workers(self, side: str, spec: WorkerSpec | None) -> bool:
        """Make `side`'s running workers match `spec` (None: none), restarting only when it changed.

        Returns whether new worker processes started (cold: see `measure.warm_up`)."""
        current = self._workers[side]
        if current.spec == spec and all(p.poll() is None for p in current.processes):
            return False
        for process in current.processes:
            stop(process)
        current.processes, current.spec = [], spec
        if spec is None:
            return False
        names = []
        for i in range(spec.instances):
            name = f"{side}{i}-{os.getpid()}@loadtest"
            argv = self._worker_argv(side, spec, name)
            worker = self.cluster.start_worker(
                spec.queues, name=f"worker-{side}{i}", concurrency=spec.concurrency, pool_impl=spec.pool_impl, argv=argv
            )
            current.processes.append(worker)
            names.append(name)
        apps = {"chorus": self.chorus_celery, "raw": self.raw_celery, "lean": self.lean_celery}
        self._wait_workers(apps[side], names, current.processes)
        return True

    def _worker_argv(self, side: str, spec: WorkerSpec, name: str) -> list[str]:
        # Chorus's own worker command line (flags, -c, acks settings come from the same app config);
        # Celery's options take the last value given, so -n and -P override. A baseline's worker consumes
        # its own queue for each of Chorus's pools in `spec.queues`, as one Chorus worker consumes them all.
        if side == "chorus":
            return [*worker_command(spec.queues, spec.concurrency, spec.pool_impl), "-n", name]
        baseline = self.baselines[side]
        queues = ",".join(dict.fromkeys(baseline.queue_of(p.strip()) for p in spec.queues.split(",")))
        argv = worker_command(queues, spec.concurrency, spec.pool_impl)
        argv[argv.index("workers.app")] = "loadtests.raw_app" if side == "raw" else "loadtests.raw_app:lean_app"
        if side == "lean":
            argv.remove("-E")  # no task events: the lean floor
        return [*argv, "-n", name]

    def _wait_workers(self, app: Celery, names: list[str], processes: list[subprocess.Popen[bytes]]) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in processes):
                raise RuntimeError(f"a worker exited at start; see the logs in {self.svc.run_dir}")
            replies = app.control.ping(destination=names, timeout=0.5) or []
            if {name for reply in replies for name in reply} >= set(names):
                return
        raise RuntimeError(f"workers {names} did not answer within 60 s; logs in {self.svc.run_dir}")

    def worker_pids(self, side: str) -> list[int]:
        return [p.pid for p in self._workers[side].processes]

    def close(self) -> None:
        # Every side's workers at once: each warm shutdown waits only for its own pool (three groups now).
        processes = [p for group in self._workers.values() for p in group.processes]
        for group in self._workers.values():
            group.processes, group.spec = [], None
        stop_all(processes)
        self.cluster.close()
        if self._raw_api is not None:
            stop(self._raw_api)
        self.engine.close()
        self.db.dispose()
