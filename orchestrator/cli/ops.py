"""Operations subcommands of `chorus`: `flower` (Flower on the worker app) and `retry` (re-apply a Celery task)."""

from __future__ import annotations

import argparse
import getpass
import importlib.util
import json
import os
import sys
from typing import TYPE_CHECKING, Any

from orchestrator.cli.exit_codes import EXIT_FAILURE, EXIT_OK
from orchestrator.core.errors import ConfigurationError
from orchestrator.settings import Settings

if TYPE_CHECKING:
    from orchestrator.engine import Engine


def add_commands(commands: Any) -> None:
    """Add `flower` and `retry` to the `chorus` subcommands."""
    flower = commands.add_parser(
        "flower",
        help="run Flower on the worker app (task events, basic auth) [env: CHORUS_FLOWER_ADDRESS, "
        "CHORUS_FLOWER_PORT, CHORUS_FLOWER_USERNAME, CHORUS_FLOWER_PASSWORD, CHORUS_FLOWER_URL_PREFIX, "
        "CHORUS_FLOWER_PERSISTENT, CHORUS_FLOWER_DB]",
    )
    flower.set_defaults(ops_command="flower")
    retry = commands.add_parser("retry", help="re-apply a Celery task by the id Flower shows; the engine retries")
    retry.add_argument("celery_task_id", help="the task's UUID, as Flower's task page shows it")
    retry.add_argument("--actor", help="who retries, for the audit trail (default: cli:$USER)")
    retry.add_argument("--json", action="store_true", help="print what was sent as JSON")
    retry.set_defaults(ops_command="retry")


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.ops_command == "flower":
        return _flower(settings)
    return _retry(settings, args.celery_task_id, actor=args.actor or f"cli:{getpass.getuser()}", as_json=args.json)


def flower_installed() -> bool:
    return importlib.util.find_spec("flower") is not None


def _flower(settings: Settings) -> int:
    from orchestrator.cli.flower import FlowerSettings, check, flower_command, flower_environment

    if not flower_installed():
        # Flower is an extra (it pulls in Tornado); say how to get it rather than let Celery fail on `flower`.
        raise ConfigurationError(
            "flower",
            "Flower is not installed: pip install -e '.[flower]' (or pip install flower)",
        )
    flower = FlowerSettings()
    check(flower)
    state_file = None
    if flower.persistent:
        state_file = flower.db or settings.data_dir / "flower-state"
        state_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    argv = flower_command(flower, state_file)
    # Flower loads the worker app, which reads its settings from the environment: pass on the broker and the
    # database chosen here (they may come from a `chorus local`'s runtime.json).
    chosen = {
        "CHORUS_DATABASE_URL": settings.database_url,
        "CHORUS_BROKER_URL": settings.broker_url,
        "CHORUS_RESULT_BACKEND": settings.effective_result_backend,
    }
    # Flower (a Celery command) owns the process from here, as the worker does.
    os.execve(argv[0], argv, {**os.environ, **chosen, **flower_environment(flower)})
    return EXIT_FAILURE  # not reached


def _retry(settings: Settings, celery_task_id: str, *, actor: str, as_json: bool) -> int:
    from orchestrator.celery_app import create_celery_app
    from orchestrator.cli.reapply import locate, send
    from orchestrator.engine import Engine
    from orchestrator.store.database import make_engine, make_sessionmaker

    app = create_celery_app(settings)
    db = make_engine(settings.database_url, pool_size=1)
    try:
        # Reads only: no audit key is needed (nothing is appended to the trail from here).
        engine = Engine(settings, make_sessionmaker(db), app)
        message = locate(app, celery_task_id, engine.run_of_celery_task)
        # The states before the re-apply: a worker may take the new message at once.
        states = _task_run_states(engine, message.kwargs)
        sent = send(app, celery_task_id, message, actor=actor)
    finally:
        db.dispose()
        app.close()
    if as_json:
        print(json.dumps({**sent.__dict__, "task_run_states": states}, sort_keys=True))  # noqa: T201
    else:
        # Celery's status of a Chorus message says little (a failed task run's link returned a verdict): the
        # task runs' states in the engine are what the operator retries.
        runs = ", ".join(f"{task_id} {state}" for task_id, state in states.items()) or "none recorded"
        print(  # noqa: T201
            f"re-applied {sent.name} {sent.original_id} as {sent.new_id} on queue {sent.queue} by {actor}; "
            f"task runs when re-applied: {runs} (Celery status {sent.original_state}, message from the "
            f"{sent.source})",
            file=sys.stdout,
        )
    return EXIT_OK


def _task_run_states(engine: Engine, kwargs: dict[str, Any]) -> dict[str, str]:
    """The engine's state of each task run a message names (a `run_inline` names several), by task id."""
    from orchestrator.engine import TaskRunCoordinates

    execution_id = kwargs.get("execution_id")
    if not execution_id:
        return {}
    runs = kwargs.get("runs", [kwargs] if "task_id" in kwargs else [])
    coordinates = [
        TaskRunCoordinates(
            execution_id, run["task_id"], run.get("parent_id"), run.get("iteration"), int(run.get("attempt", 1))
        )
        for run in runs
    ]
    found = engine.task_run_states([at.task_run_id for at in coordinates])
    return {at.task_id: found.get(at.task_run_id, "NOT_STARTED") for at in coordinates}
