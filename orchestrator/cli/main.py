"""`chorus` entry point: parses arguments, builds settings and logging, hands off to the command's module.

Each command's body lives in the module named in `COMMANDS`, imported only when that command runs: `chorus run`
starts without the database or Celery code, and this module imports none of the modules it hands off to.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import cast

from orchestrator.cli import admin, client, ops
from orchestrator.cli.beside_local import BESIDE_LOCAL, add_data_dir, beside_local
from orchestrator.cli.exit_codes import EXIT_FAILURE, EXIT_USAGE
from orchestrator.core.errors import ChorusError, ConfigurationError
from orchestrator.hardening import forbid_inspection
from orchestrator.observability.logs import configure_logging
from orchestrator.settings import Settings, load_settings

OfflineCommand = Callable[[argparse.Namespace], int]
Command = Callable[[argparse.Namespace, Settings], int]

#: Commands that need no settings, database or broker (the client ones talk to a server over HTTP).
OFFLINE_COMMANDS = {
    "flow": "orchestrator.cli.flow_files:chorus_flow_validate",
    "run": "orchestrator.cli.client:chorus_client",
    "executions": "orchestrator.cli.client:chorus_client",
    "replay": "orchestrator.cli.client:chorus_client",
}

#: The other commands, by name: "module:function", called with the parsed arguments and the settings.
COMMANDS = {
    "local": "orchestrator.cli.local:chorus_local",
    "server": "orchestrator.cli.cluster:chorus_server",
    "worker": "orchestrator.cli.cluster:chorus_worker",
    "scheduler": "orchestrator.cli.cluster:chorus_scheduler",
    "migrate": "orchestrator.cli.cluster:chorus_migrate",
    "user": "orchestrator.cli.admin:run",
    "token": "orchestrator.cli.admin:run",
    "audit": "orchestrator.cli.admin:run",
    "flower": "orchestrator.cli.ops:run",
    "retry": "orchestrator.cli.ops:run",
}

#: Commands that listen on a port: beyond loopback they need credentials.
LISTENING = ("server", "local")


def _env_help(text: str, variable: str) -> str:
    return f"{text} [env: {variable}]"


def build_parser() -> argparse.ArgumentParser:
    """Every `chorus` command and its options (each option's help names its CHORUS_* variable)."""
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

    admin.add_commands(commands)
    ops.add_commands(commands)
    client.add_commands(commands)
    for name in BESIDE_LOCAL:
        add_data_dir(commands.choices[name])
    return parser


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


def _load(target: str) -> object:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one `chorus` command; returns its exit code (errors a user can fix are printed, not raised)."""
    args = build_parser().parse_args(argv)
    try:
        if args.command in OFFLINE_COMMANDS:
            return cast(OfflineCommand, _load(OFFLINE_COMMANDS[args.command]))(args)
        # Before anything reads secrets: scripts of this user must not read this process's environment.
        forbid_inspection()
        settings = _settings(args)
        configure_logging(settings.log_level)
        if args.command in BESIDE_LOCAL:
            settings = beside_local(args, settings)
        if args.command in LISTENING:
            # Listening beyond loopback needs credentials; refused here with the variable to set.
            settings.refuse_unsafe_bind()
        return cast(Command, _load(COMMANDS[args.command]))(args, settings)
    except ConfigurationError as e:
        print(f"chorus: configuration error: {e.message}", file=sys.stderr)  # noqa: T201
        return EXIT_USAGE
    except ChorusError as e:
        print(f"chorus: {e.message}", file=sys.stderr)  # noqa: T201
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
