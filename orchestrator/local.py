"""`chorus local`: the cluster's processes on embedded PostgreSQL and Redis, in one command.

Only the URLs differ from a cluster: the same API, sweeper and Celery workers run against real
PostgreSQL and Redis servers started under the data directory (unless the URLs point elsewhere).
As in a least-privilege cluster, migrations run as the embedded database's owner and everything else
as a runtime role that cannot rewrite the audit trail (`local_database`), and the audit trail is keyed
by a key file kept in the data directory.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from orchestrator.core.errors import ChorusError, ConfigurationError
from orchestrator.local_database import LocalDatabase
from orchestrator.settings import Settings

logger = logging.getLogger(__name__)


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
    from orchestrator.cli import API_APP, run_worker_process, stop_process
    from orchestrator.embedded import EmbeddedServer, start_postgres, start_redis
    from orchestrator.local_database import lock_down, use_credentials

    if not _port_free(settings.host, settings.port):
        raise ConfigurationError("CHORUS_PORT", f"port {settings.port} on {settings.host} is already in use")
    flow_files = _flow_files(flows_dirs)
    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    servers: list[EmbeddedServer] = []
    worker = None
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
            servers.append(start_redis(data_dir / "redis"))
            updates["broker_url"] = servers[-1].url
            updates["result_backend"] = None
        settings = Settings.model_validate({**settings.model_dump(), **updates})
        _prepare_database(settings, flow_files, local_db)
        # The API (built from its import string, like in a cluster) and the workers read these.
        if settings.audit_key_file is not None:
            os.environ["CHORUS_AUDIT_KEY_FILE"] = str(settings.audit_key_file)
        os.environ.update(
            CHORUS_DATABASE_URL=settings.database_url,
            CHORUS_BROKER_URL=settings.broker_url,
            CHORUS_RESULT_BACKEND=settings.effective_result_backend,
            CHORUS_DATA_DIR=str(data_dir),
        )
        worker = run_worker_process(",".join(settings.pools), settings, dict(os.environ))
        stop_scheduler = _start_scheduler(settings)
        print(  # noqa: T201
            f"Chorus is running: http://{settings.host}:{settings.port}/api/v1/main  "
            f"(data in {data_dir}; Ctrl-C stops everything)",
            file=sys.stderr,
            flush=True,
        )
        config = uvicorn.Config(API_APP, factory=True, host=settings.host, port=settings.port, log_config=None)
        # uvicorn re-raises the signal that stopped it once it has shut down; SIGTERM's default action
        # would then end this process before `finally`, leaving the worker and the servers orphaned.
        signal.signal(signal.SIGTERM, _stop_on_sigterm)
        uvicorn.Server(config).run()
    finally:
        if stop_scheduler is not None:
            stop_scheduler()
        if worker is not None:
            stop_process(worker)
        for server in reversed(servers):
            server.stop()
    return 0


def _stop_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _prepare_database(settings: Settings, flow_files: Sequence[Path], local_db: LocalDatabase | None) -> None:
    from orchestrator.audit_keys import load_keyring
    from orchestrator.celery_app import create_celery_app
    from orchestrator.database import make_engine, make_sessionmaker, migrate
    from orchestrator.db_roles import check_runtime_connection, migration_url, runtime_role
    from orchestrator.engine import Engine
    from orchestrator.local_database import RUNTIME_ROLE

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
        engine = Engine(settings, sessions, create_celery_app(settings))
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
    from orchestrator.database import make_engine, make_sessionmaker
    from orchestrator.engine import Engine
    from orchestrator.triggers import Scheduler, start_scheduler_thread

    db = make_engine(settings.database_url, pool_size=2)
    sessions = make_sessionmaker(db, audit_key=load_keyring(settings).current)
    engine = Engine(settings, sessions, create_celery_app(settings))
    thread, stop = start_scheduler_thread(Scheduler(engine), settings.scheduler_interval_s)

    def shutdown() -> None:
        stop.set()
        thread.join(timeout=5)
        db.dispose()

    return shutdown
