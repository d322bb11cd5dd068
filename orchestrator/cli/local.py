"""`chorus local`: the cluster's processes on embedded PostgreSQL and Redis, in one command.

Only the URLs differ from a cluster: the same API, sweeper and Celery workers run against real
PostgreSQL and Redis servers started under the data directory (unless the URLs point elsewhere).
As in a least-privilege cluster, migrations run as the embedded database's owner and everything else
as a runtime role that cannot rewrite the audit trail (`local_database`), and the audit trail is keyed
by a key file kept in the data directory.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from orchestrator.audit_keys import KEY_FILE_NAME, ensure_key_file
from orchestrator.cli.cluster import controller_engine
from orchestrator.cli.embedded import HOST, EmbeddedServer, free_port, start_postgres, start_redis
from orchestrator.cli.exit_codes import EXIT_OK
from orchestrator.cli.local_database import RUNTIME_ROLE, LocalDatabase, lock_down, use_credentials
from orchestrator.cli.local_runtime import LocalRuntime, remove_runtime, this_process_started_at, write_runtime
from orchestrator.cli.local_worker import forget_worker, record_worker, stop_stale_worker
from orchestrator.cli.processes import api_config, run_worker_process, stop_process
from orchestrator.core.errors import ChorusError, ConfigurationError
from orchestrator.draining import serve
from orchestrator.lifeline import open_lifeline
from orchestrator.settings import Settings
from orchestrator.store.database import make_engine, migrate
from orchestrator.store.db_roles import check_runtime_connection, migration_url, runtime_role
from orchestrator.triggers.realtime import RealtimeRunner, start_realtime_thread
from orchestrator.triggers.scheduler import Scheduler, start_scheduler_thread
from orchestrator.urls import without_password

#: Set in the environment by whoever started `chorus local`: those services are used, not embedded ones.
EXPLICIT_URLS = ("CHORUS_DATABASE_URL", "CHORUS_BROKER_URL")


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


def chorus_local(args: argparse.Namespace, settings: Settings) -> int:
    """`chorus local`: the whole stack on embedded services, flows deployed from `--flows`."""
    explicit_env = {name for name in EXPLICIT_URLS if os.environ.get(name)}
    return run_local(settings, flows_dirs=args.flows, explicit_env=explicit_env)


def run_local(settings: Settings, *, flows_dirs: Sequence[Path], explicit_env: set[str]) -> int:
    """Start everything, deploy the flows, serve until Ctrl-C, then stop everything (no orphans)."""
    if not _port_free(settings.host, settings.port):
        raise ConfigurationError("CHORUS_PORT", f"port {settings.port} on {settings.host} is already in use")
    flow_files = _flow_files(flows_dirs)
    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    stop_stale_worker(data_dir)
    servers: list[EmbeddedServer] = []
    worker: subprocess.Popen[bytes] | None = None
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
            servers.append(start_redis(data_dir / "redis", port=free_port(), password=secrets.token_urlsafe(24)))
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
        record_worker(data_dir, worker.pid)
        stop_scheduler = _start_scheduler(settings)
        runtime = _runtime(settings, data_dir)
        write_runtime(data_dir, runtime)
        print(_banner(settings, runtime), file=sys.stderr, flush=True)  # noqa: T201
        config = api_config(settings)
        # uvicorn re-raises the signal that stopped it once it has shut down; SIGTERM's default action
        # would then end this process before `finally`, leaving the worker and the servers orphaned.
        signal.signal(signal.SIGTERM, _stop_on_sigterm)
        serve(config)
    finally:
        if stop_scheduler is not None:
            stop_scheduler()
        if worker is not None:
            stop_process(worker)
            forget_worker(data_dir)
        if lifeline is not None:
            os.close(lifeline)
        remove_runtime(data_dir, os.getpid())
        for server in reversed(servers):
            server.stop()
    return EXIT_OK


def _stop_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _runtime(settings: Settings, data_dir: Path) -> LocalRuntime:
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
        f"  PostgreSQL  {without_password(runtime.database_url.replace('postgresql+psycopg://', 'postgresql://', 1))}",
        f"  Redis       {without_password(runtime.broker_url)}",
        f"  auth        {auth}",
    ]
    return "\n".join(lines)


def _prepare_database(settings: Settings, flow_files: Sequence[Path], local_db: LocalDatabase | None) -> None:
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
        engine = controller_engine(settings, db)
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
    db = make_engine(settings.database_url, pool_size=2)
    engine = controller_engine(settings, db)
    thread, stop = start_scheduler_thread(Scheduler(engine), settings.scheduler_interval_s)
    realtime_thread, realtime_stop = start_realtime_thread(RealtimeRunner(engine))

    def shutdown() -> None:
        stop.set()
        realtime_stop.set()
        thread.join(timeout=5)
        realtime_thread.join(timeout=5)
        engine.close()
        db.dispose()

    return shutdown
