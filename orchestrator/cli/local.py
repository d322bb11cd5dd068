"""`chorus local`: the cluster's processes on embedded PostgreSQL and Redis, in one command.

Only the URLs differ from a cluster: the same API, sweeper and Celery workers run against real
PostgreSQL and Redis servers started under the data directory (unless the URLs point elsewhere).
As in a least-privilege cluster, migrations run as the embedded database's owner and everything else
as a runtime role that cannot rewrite the audit trail (`local_database`), and the audit trail is keyed
by a key file kept in the data directory.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psutil

from orchestrator.cli.local_database import LocalDatabase
from orchestrator.cli.local_runtime import LocalRuntime
from orchestrator.core.errors import ChorusError, ConfigurationError
from orchestrator.settings import Settings
from orchestrator.triggers.wiring import build_engine

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"
WORKER_APP = "workers.app"  #: in a worker's command line (`celery -A workers.app worker`)
_WORKER_PID_FILE = "worker.pid"


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _flow_files(dirs: Sequence[Path]) -> list[Path]:
    files: list[Path] = []
    for directory in dirs:
        if directory.is_file():
            files.append(directory)
        elif directory.is_dir():
            files.extend(sorted(p for p in directory.rglob("*") if p.suffix in (".yaml", ".yml")))
        else:
            raise ConfigurationError("--flows", f"no such file or directory: {directory}")
    return files


def run_local(settings: Settings, *, flows_dirs: Sequence[Path], explicit_env: set[str]) -> int:
    """Start everything, deploy the flows, serve until Ctrl-C, then stop everything (no orphans)."""
    import uvicorn

    from orchestrator.audit_keys import KEY_FILE_NAME, ensure_key_file
    from orchestrator.cli.embedded import EmbeddedServer, free_port, start_postgres, start_redis
    from orchestrator.cli.local_database import lock_down, use_credentials
    from orchestrator.cli.local_runtime import remove_runtime, write_runtime
    from orchestrator.cli.main import API_APP, run_worker_process, stop_process
    from orchestrator.draining import serve
    from orchestrator.lifeline import open_lifeline

    if not _port_free(settings.host, settings.port):
        raise ConfigurationError("CHORUS_PORT", f"port {settings.port} on {settings.host} is already in use")
    flow_files = _flow_files(flows_dirs)
    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    _stop_stale_worker(data_dir)
    servers: list[EmbeddedServer] = []
    worker = None
    lifeline: int | None = None
    stop_scheduler: Callable[[], None] | None = None
    try:
        updates: dict[str, object] = {"data_dir": data_dir}
        local_db: LocalDatabase | None = None
        if "CHORUS_DATABASE_URL" not in explicit_env:
            passwords = use_credentials(data_dir / "postgres")
            servers.append(start_postgres(data_dir / "postgres"))
            local_db = lock_down(servers[-1].url, passwords)
            updates["database_url"] = local_db.runtime_url
        if settings.audit_key is None and settings.audit_key_file is None:
            updates["audit_key_file"] = ensure_key_file(data_dir / KEY_FILE_NAME)
        if "CHORUS_BROKER_URL" not in explicit_env:
            # A fresh port each run: a worker left behind by an earlier run can never reach this run's broker.
            servers.append(start_redis(data_dir / "redis", port=free_port()))
            updates["broker_url"] = servers[-1].url
            updates["result_backend"] = None
        settings = Settings.model_validate({**settings.model_dump(), **updates})
        _prepare_database(settings, flow_files, local_db)
        # The worker group serves its metrics on loopback; the API's /metrics merges them (one place to look).
        metrics_port = free_port()
        worker_metrics = f"http://{HOST}:{metrics_port}/metrics"
        # The API (built from its import string, like in a cluster) and the workers read these.
        if settings.audit_key_file is not None:
            os.environ["CHORUS_AUDIT_KEY_FILE"] = str(settings.audit_key_file)
        os.environ.update(
            CHORUS_DATABASE_URL=settings.database_url,
            CHORUS_BROKER_URL=settings.broker_url,
            CHORUS_RESULT_BACKEND=settings.effective_result_backend,
            CHORUS_DATA_DIR=str(data_dir),
            CHORUS_METRICS_MERGE_URLS=json.dumps([worker_metrics]),
        )
        worker_env = {**os.environ, "CHORUS_METRICS_HOST": HOST, "CHORUS_METRICS_PORT": str(metrics_port)}
        child_end, lifeline = open_lifeline()
        try:
            worker = run_worker_process(",".join(settings.pools), settings, worker_env, lifeline_fd=child_end)
        finally:
            os.close(child_end)  # the worker has its copy; ours would keep the pipe open after we die
        _record_worker(data_dir, worker.pid)
        stop_scheduler = _start_scheduler(settings)
        runtime = _runtime(settings, data_dir)
        write_runtime(data_dir, runtime)
        print(_banner(settings, runtime), file=sys.stderr, flush=True)  # noqa: T201
        config = uvicorn.Config(
            API_APP, factory=True, host=settings.host, port=settings.port, log_config=None, proxy_headers=False
        )
        # uvicorn re-raises the signal that stopped it once it has shut down; SIGTERM's default action
        # would then end this process before `finally`, leaving the worker and the servers orphaned.
        signal.signal(signal.SIGTERM, _stop_on_sigterm)
        serve(config)
    finally:
        if stop_scheduler is not None:
            stop_scheduler()
        if worker is not None:
            stop_process(worker)
            (data_dir / _WORKER_PID_FILE).unlink(missing_ok=True)
        if lifeline is not None:
            os.close(lifeline)
        remove_runtime(data_dir, os.getpid())
        for server in reversed(servers):
            server.stop()
    return 0


def _stop_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _record_worker(data_dir: Path, pid: int) -> None:
    """Note the worker (pid, start time) and ourselves, so that a later run can stop it if it outlived us."""
    started = psutil.Process(pid).create_time()
    (data_dir / _WORKER_PID_FILE).write_text(f"{pid} {started} {os.getpid()}\n")


def _stop_stale_worker(data_dir: Path) -> None:
    """Kill the worker group an earlier run recorded, if it is still running and that run is gone.

    The lifeline makes a worker die with its `chorus local`; this covers a worker that somehow survived (an old
    Chorus, a stuck process), so that it can never consume this run's queues.
    """
    path = data_dir / _WORKER_PID_FILE
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


def _runtime(settings: Settings, data_dir: Path) -> LocalRuntime:
    from orchestrator.cli.local_runtime import this_process_started_at

    base = f"http://{settings.host}:{settings.port}"
    return LocalRuntime(
        pid=os.getpid(),
        started_at=this_process_started_at(),
        data_dir=str(data_dir),
        api_url=f"{base}/api/v1/{settings.tenant}",
        console_url=f"{base}/ui",
        metrics_url=f"{base}/metrics",
        database_url=settings.database_url,
        broker_url=settings.broker_url,
        result_backend=settings.effective_result_backend,
    )


def _banner(settings: Settings, runtime: LocalRuntime) -> str:
    """What a newcomer needs after start: where to click, where to scrape, where the data is, how to log in."""
    if settings.auth_required:
        auth = "on: sign in with CHORUS_ADMIN_USERNAME's password, or a token from `chorus token create`"
    else:
        auth = "off (anonymous admin on loopback); set CHORUS_ADMIN_USERNAME and CHORUS_ADMIN_PASSWORD to turn it on"
    beside = f"chorus user|token|audit|retry|flower --data-dir {runtime.data_dir}"
    lines = [
        "Chorus is running (Ctrl-C stops everything)",
        f"  console     {runtime.console_url}",
        f"  API         {runtime.api_url}",
        f"  metrics     {runtime.metrics_url}  (API, scheduler and workers)",
        f"  data        {runtime.data_dir}  (`{beside}` find this run there)",
        # The libpq form, which psql also takes.
        f"  PostgreSQL  {_without_secret(runtime.database_url.replace('postgresql+psycopg://', 'postgresql://', 1))}",
        f"  Redis       {_without_secret(runtime.broker_url)}",
        f"  auth        {auth}",
    ]
    return "\n".join(lines)


def _without_secret(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1)))


def _prepare_database(settings: Settings, flow_files: Sequence[Path], local_db: LocalDatabase | None) -> None:
    from orchestrator.audit_keys import load_keyring
    from orchestrator.celery_app import create_celery_app
    from orchestrator.cli.local_database import RUNTIME_ROLE
    from orchestrator.store.database import make_engine, make_sessionmaker, migrate
    from orchestrator.store.db_roles import check_runtime_connection, migration_url, runtime_role

    # The embedded database's owner, or for an external one whatever `chorus migrate` would use.
    owner = make_engine(local_db.owner_url if local_db else migration_url(settings), pool_size=1)
    try:
        migrate(
            owner, runtime_role=RUNTIME_ROLE if local_db else runtime_role(settings), runtime_url=settings.database_url
        )
    finally:
        owner.dispose()
    db = make_engine(settings.database_url)
    try:
        check_runtime_connection(db, settings)
        sessions = make_sessionmaker(db, audit_key=load_keyring(settings).current)
        engine = build_engine(settings, sessions, create_celery_app(settings))
        for path in flow_files:
            try:
                row = engine.deploy_flow(path.read_text(encoding="utf-8"), actor="system:local")
            except ChorusError as e:
                print(f"chorus: not deployed: {path}: {e.message}", file=sys.stderr)  # noqa: T201
                continue
            print(f"deployed {row.namespace}.{row.flow_id} revision {row.revision} from {path}", file=sys.stderr)  # noqa: T201
    finally:
        db.dispose()


def _start_scheduler(settings: Settings) -> Callable[[], None]:
    """The scheduler loop on a thread of this process (a cluster runs it as `chorus scheduler`)."""
    from orchestrator.audit_keys import load_keyring
    from orchestrator.celery_app import create_celery_app
    from orchestrator.store.database import make_engine, make_sessionmaker
    from orchestrator.triggers.realtime import RealtimeRunner, start_realtime_thread
    from orchestrator.triggers.scheduler import Scheduler, start_scheduler_thread

    db = make_engine(settings.database_url, pool_size=2)
    sessions = make_sessionmaker(db, audit_key=load_keyring(settings).current)
    engine = build_engine(settings, sessions, create_celery_app(settings))
    thread, stop = start_scheduler_thread(Scheduler(engine), settings.scheduler_interval_s)
    realtime_thread, realtime_stop = start_realtime_thread(RealtimeRunner(engine))

    def shutdown() -> None:
        stop.set()
        realtime_stop.set()
        thread.join(timeout=5)
        realtime_thread.join(timeout=5)
        db.dispose()

    return shutdown
