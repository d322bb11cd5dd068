"""The cluster's commands: `chorus migrate`, `chorus server`, `chorus scheduler` and `chorus worker`.

Each takes the settings `main` built and returns an exit code (or hands the process over to Celery).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading

from orchestrator.audit_keys import load_keyring
from orchestrator.celery_app import create_celery_app
from orchestrator.cli.exit_codes import EXIT_FAILURE, EXIT_OK
from orchestrator.cli.processes import api_config, worker_command
from orchestrator.draining import serve
from orchestrator.engine import Engine
from orchestrator.observability.metrics import MetricsSettings, serve_metrics
from orchestrator.settings import Settings
from orchestrator.store.database import DatabaseEngine, make_engine, make_sessionmaker, migrate
from orchestrator.store.db_roles import check_runtime_connection, migration_url, runtime_role
from orchestrator.store.errors import OperationalError
from orchestrator.triggers.realtime import RealtimeRunner, start_realtime_thread
from orchestrator.triggers.scheduler import Scheduler, run_scheduler
from orchestrator.triggers.wiring import build_engine

logger = logging.getLogger(__name__)


def controller_engine(settings: Settings, db: DatabaseEngine) -> Engine:
    """The controller's `Engine` over `db` with the triggers wired in, its audit trail keyed as `settings` say."""
    sessions = make_sessionmaker(db, audit_key=load_keyring(settings).current)
    return build_engine(settings, sessions, create_celery_app(settings))


def chorus_migrate(args: argparse.Namespace, settings: Settings) -> int:
    """`chorus migrate`: upgrade the schema as the migration role, granting the runtime role its privileges."""
    engine = make_engine(migration_url(settings))
    try:
        migrate(engine, runtime_role=runtime_role(settings), runtime_url=settings.database_url)
    finally:
        engine.dispose()
    return EXIT_OK


def chorus_server(args: argparse.Namespace, settings: Settings) -> int:
    """`chorus server`: the HTTP API (and the sweeper it runs) until a signal drains it."""
    db = make_engine(settings.database_url, pool_size=1)
    try:
        check_runtime_connection(db, settings)
    except OperationalError as e:  # the server starts and retries; its /health says what is wrong
        logger.warning("could not check the database role's privileges: %s", e.orig)
    finally:
        db.dispose()
    serve(api_config(settings))
    return EXIT_OK


def chorus_scheduler(args: argparse.Namespace, settings: Settings) -> int:
    """`chorus scheduler`: the trigger scheduler and the realtime triggers until SIGTERM or SIGINT."""
    db = make_engine(settings.database_url, pool_size=2)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    server = serve_metrics(MetricsSettings())
    try:
        engine = controller_engine(settings, db)
        # Realtime triggers consume beside the schedule on every replica: receipts make that safe.
        realtime_thread, realtime_stop = start_realtime_thread(RealtimeRunner(engine))
        try:
            run_scheduler(Scheduler(engine), stop, settings.scheduler_interval_s)
        finally:
            realtime_stop.set()
            realtime_thread.join(timeout=10)
            engine.close()
    finally:
        if server is not None:
            server.shutdown()
        db.dispose()
    return EXIT_OK


def chorus_worker(args: argparse.Namespace, settings: Settings) -> int:
    """`chorus worker --pool P`: becomes a Celery worker for the pools named (never returns)."""
    # Celery owns the process from here (signals, prefork); exec keeps one process to supervise.
    argv = worker_command(args.pool, settings.worker_concurrency, settings.worker_pool)
    os.execv(argv[0], argv)
    return EXIT_FAILURE  # not reached
