"""`chorus` command line: the only composition root. Parses arguments, builds settings, hands off.

The API and the workers are named by import string (`api.app:create_app`, `workers.app`) so the
static import graph stays one-way and `chorus local` runs exactly the cluster's code.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path

from orchestrator.core.errors import ChorusError, ConfigurationError
from orchestrator.hardening import forbid_inspection
from orchestrator.observability.logs import configure_logging
from orchestrator.settings import Settings, load_settings
from orchestrator.triggers.wiring import build_engine

EXIT_OK = 0
EXIT_INVALID = 1  #: `flow validate` found an invalid flow
EXIT_USAGE = 2  #: bad arguments or settings
EXIT_FAILURE = 3  #: a server or dependency failed

API_APP = "api.app:create_app"
WORKER_APP = "workers.app"


def _env_help(text: str, variable: str) -> str:
    return f"{text} [env: {variable}]"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chorus", description="Agentic orchestration on Celery, Redis and Postgres.")
    parser.add_argument("--version", action="version", version=f"chorus {version('chorus')}")
    commands = parser.add_subparsers(dest="command", required=True)

    local = commands.add_parser("local", help="run the whole stack on embedded PostgreSQL and Redis")
    local.add_argument("--port", type=int, help=_env_help("HTTP port (default 8080)", "CHORUS_PORT"))
    local.add_argument("--data-dir", type=Path, help=_env_help("data directory (default .chorus)", "CHORUS_DATA_DIR"))
    local.add_argument("--flows", type=Path, action="append", default=[], help="deploy every flow file found here")

    server = commands.add_parser("server", help="run the HTTP API and the controller's sweeper")
    server.add_argument("--host", help=_env_help("bind address", "CHORUS_HOST"))
    server.add_argument("--port", type=int, help=_env_help("HTTP port", "CHORUS_PORT"))

    worker = commands.add_parser("worker", help="run a Celery worker for one or more pools")
    worker.add_argument("--pool", default="control", help="pool(s) to consume, comma-separated (e.g. control,io)")
    worker.add_argument("--concurrency", type=int, help=_env_help("worker processes", "CHORUS_WORKER_CONCURRENCY"))

    commands.add_parser("scheduler", help="run the trigger scheduler (one active replica, the others on standby)")

    commands.add_parser("migrate", help="upgrade the database schema to the newest revision")

    flow = commands.add_parser("flow", help="flow files")
    flow_commands = flow.add_subparsers(dest="flow_command", required=True)
    validate = flow_commands.add_parser("validate", help="validate flow files offline (exit 1 if any is invalid)")
    validate.add_argument("paths", nargs="+", type=Path)
    validate.add_argument("--json", action="store_true", help="one JSON object per file")

    from orchestrator.cli.admin import add_commands

    add_commands(commands)

    from orchestrator.cli.ops import add_commands as add_ops_commands

    add_ops_commands(commands)

    from orchestrator.cli.client import add_commands as add_client_commands

    add_client_commands(commands)
    for name in BESIDE_LOCAL:
        _add_data_dir(commands.choices[name])
    return parser


#: Commands that talk to a running server over its HTTP API (orchestrator.cli.client).
CLIENT_COMMANDS = ("run", "executions")

#: Commands that, run beside `chorus local`, reach its database and broker through its data directory.
BESIDE_LOCAL = ("user", "token", "audit", "retry", "flower")


def _add_data_dir(parser: argparse.ArgumentParser) -> None:
    """Add `--data-dir` to `parser`, or to each of its leaf subcommands (so it may follow their arguments)."""
    subcommands = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    if not subcommands:
        parser.add_argument(
            "--data-dir",
            type=Path,
            help=_env_help("work on the `chorus local` running on this data directory", "CHORUS_DATA_DIR"),
        )
    for action in subcommands:
        for child in action.choices.values():
            _add_data_dir(child)


def _beside_local(args: argparse.Namespace, settings: Settings) -> Settings:
    """The settings of a command run beside `chorus local`: its database and broker, from its runtime.json.

    Used when `--data-dir` is given, or when no CHORUS_DATABASE_URL is set and CHORUS_DATA_DIR (or the default
    data directory) has a running `chorus local`.
    """
    from orchestrator.audit_keys import KEY_FILE_NAME
    from orchestrator.cli.local_runtime import read_runtime

    if args.data_dir is None and os.environ.get("CHORUS_DATABASE_URL"):
        # A database URL in the environment wins over CHORUS_DATA_DIR there: a server and its workers share
        # both (the data directory is then their internal storage, not a `chorus local`'s).
        return settings
    named = args.data_dir is not None or bool(os.environ.get("CHORUS_DATA_DIR"))
    runtime = read_runtime(settings.data_dir, required=named)
    if runtime is None:
        return settings
    update: dict[str, object] = {"database_url": runtime.database_url, "broker_url": runtime.broker_url}
    key_file = settings.data_dir / KEY_FILE_NAME
    if settings.audit_key is None and settings.audit_key_file is None and key_file.exists():
        update["audit_key_file"] = key_file  # `chorus audit verify` checks the MACs chorus local wrote
    return settings.model_copy(update={**update, "result_backend": runtime.result_backend})


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {
        key: value
        for key, value in {
            "port": getattr(args, "port", None),
            "host": getattr(args, "host", None),
            "data_dir": getattr(args, "data_dir", None),
            "worker_concurrency": getattr(args, "concurrency", None),
        }.items()
        if value is not None
    }
    return load_settings(**overrides)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "flow":
            return _flow_validate(args.paths, as_json=args.json)
        if args.command in CLIENT_COMMANDS:  # HTTP clients of a server: no settings, database or broker here
            from orchestrator.cli.client import run as run_client

            return run_client(args, os.environ)
        # Before anything reads secrets: scripts of this user must not read this process's environment.
        forbid_inspection()
        settings = _settings(args)
        configure_logging(settings.log_level)
        if args.command in BESIDE_LOCAL:
            settings = _beside_local(args, settings)
        if args.command == "migrate":
            return _migrate(settings)
        if args.command in ("flower", "retry"):
            from orchestrator.cli.ops import run as run_ops

            return run_ops(args, settings)
        if args.command in ("user", "token", "audit"):
            from orchestrator.cli.admin import run

            return run(args, settings)
        if args.command in ("server", "local"):
            # Listening beyond loopback needs credentials; refused here with the variable to set.
            settings.refuse_unsafe_bind()
        if args.command == "server":
            return _server(settings)
        if args.command == "scheduler":
            return _scheduler(settings)
        if args.command == "worker":
            return _worker(settings, args.pool)
        if args.command == "local":
            from orchestrator.cli.local import run_local

            return run_local(settings, flows_dirs=args.flows, explicit_env=_explicit_urls())
    except ConfigurationError as e:
        print(f"chorus: configuration error: {e.message}", file=sys.stderr)  # noqa: T201
        return EXIT_USAGE
    except ChorusError as e:
        print(f"chorus: {e.message}", file=sys.stderr)  # noqa: T201
        return EXIT_FAILURE
    return EXIT_USAGE


def _explicit_urls() -> set[str]:
    return {name for name in ("CHORUS_DATABASE_URL", "CHORUS_BROKER_URL") if os.environ.get(name)}


def _flow_validate(paths: list[Path], *, as_json: bool) -> int:
    from orchestrator.cli.flow_files import format_reports, validate_paths

    missing = [p for p in paths if not p.exists()]
    if missing:
        print(f"chorus: no such file or directory: {', '.join(map(str, missing))}", file=sys.stderr)  # noqa: T201
        return EXIT_USAGE
    reports = validate_paths(paths)
    print(format_reports(reports, as_json=as_json))  # noqa: T201
    return EXIT_OK if all(r.valid for r in reports) else EXIT_INVALID


def _migrate(settings: Settings) -> int:
    from orchestrator.store.database import make_engine, migrate
    from orchestrator.store.db_roles import migration_url, runtime_role

    engine = make_engine(migration_url(settings))
    try:
        migrate(engine, runtime_role=runtime_role(settings), runtime_url=settings.database_url)
    finally:
        engine.dispose()
    return EXIT_OK


def _server(settings: Settings) -> int:
    import uvicorn
    from sqlalchemy.exc import OperationalError

    from orchestrator.store.database import make_engine
    from orchestrator.store.db_roles import check_runtime_connection

    db = make_engine(settings.database_url, pool_size=1)
    try:
        check_runtime_connection(db, settings)
    except OperationalError as e:  # the server starts and retries; its /health says what is wrong
        logging.getLogger(__name__).warning("could not check the database role's privileges: %s", e.orig)
    finally:
        db.dispose()

    from orchestrator.draining import serve

    # proxy_headers=False: uvicorn would believe X-Forwarded-For from loopback; api.proxies decides instead.
    serve(
        uvicorn.Config(
            API_APP, factory=True, host=settings.host, port=settings.port, log_config=None, proxy_headers=False
        )
    )
    return EXIT_OK


def _scheduler(settings: Settings) -> int:
    from orchestrator.audit_keys import load_keyring
    from orchestrator.celery_app import create_celery_app
    from orchestrator.observability.metrics import MetricsSettings, serve_metrics
    from orchestrator.store.database import make_engine, make_sessionmaker
    from orchestrator.triggers.realtime import RealtimeRunner, start_realtime_thread
    from orchestrator.triggers.scheduler import Scheduler, run_scheduler

    db = make_engine(settings.database_url, pool_size=2)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    server = serve_metrics(MetricsSettings())
    try:
        sessions = make_sessionmaker(db, audit_key=load_keyring(settings).current)
        engine = build_engine(settings, sessions, create_celery_app(settings))
        # Realtime triggers consume beside the schedule on every replica: receipts make that safe.
        realtime_thread, realtime_stop = start_realtime_thread(RealtimeRunner(engine))
        try:
            run_scheduler(Scheduler(engine), stop, settings.scheduler_interval_s)
        finally:
            realtime_stop.set()
            realtime_thread.join(timeout=10)
    finally:
        if server is not None:
            server.shutdown()
        db.dispose()
    return EXIT_OK


def worker_command(pools: str, concurrency: int, pool_impl: str = "prefork") -> list[str]:
    """The argv of a Celery worker for `pools` (also used by `chorus local` and the tests)."""
    queues = ",".join(p.strip() for p in pools.split(",") if p.strip())
    return [
        sys.executable, "-m", "celery", "-A", WORKER_APP, "worker",
        "-Q", queues, "-c", str(concurrency), "-P", pool_impl, "-n", f"{queues.replace(',', '+')}@%h",
        "--without-gossip", "--without-mingle", "-E", "-l", "INFO",
    ]  # fmt: skip


def _worker(settings: Settings, pools: str) -> int:
    # Celery owns the process from here (signals, prefork); exec keeps one process to supervise.
    argv = worker_command(pools, settings.worker_concurrency, settings.worker_pool)
    os.execv(argv[0], argv)
    return EXIT_FAILURE  # not reached


def run_worker_process(
    pools: str, settings: Settings, env: dict[str, str], *, lifeline_fd: int | None = None
) -> subprocess.Popen[bytes]:
    """Start a worker as a child process in its own process group (stopped with `stop_process`).

    With `lifeline_fd` (the read end of `orchestrator.lifeline.open_lifeline()`), the worker and everything it
    starts die when this process does, however it ends.
    """
    from orchestrator.lifeline import parent_death_signal

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
    """Warm shutdown (SIGTERM to the group), then kill whatever is left."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
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


if __name__ == "__main__":
    sys.exit(main())
