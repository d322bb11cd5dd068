"""Commands run beside a `chorus local` (user, token, audit, retry, flower): `--data-dir` and its database.

They reach the database and broker of the run found through its data directory (`runtime.json`).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from orchestrator.audit_keys import KEY_FILE_NAME
from orchestrator.cli.local_runtime import read_runtime
from orchestrator.settings import Settings

#: The commands that take `--data-dir` to work on a running `chorus local`.
BESIDE_LOCAL = ("user", "token", "audit", "retry", "flower")


def add_data_dir(parser: argparse.ArgumentParser) -> None:
    """Add `--data-dir` to `parser`, or to each of its leaf subcommands (so it may follow their arguments)."""
    # argparse keeps its subcommands private; walking `_actions` is the only way to reach the leaves.
    subcommands = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    if not subcommands:
        parser.add_argument(
            "--data-dir",
            type=Path,
            help="work on the `chorus local` running on this data directory [env: CHORUS_DATA_DIR]",
        )
    for action in subcommands:
        for child in action.choices.values():
            add_data_dir(child)


def beside_local(args: argparse.Namespace, settings: Settings) -> Settings:
    """The settings of a command run beside `chorus local`: its database and broker, from its runtime.json.

    Used when `--data-dir` is given, or when no CHORUS_DATABASE_URL is set and CHORUS_DATA_DIR (or the default
    data directory) has a running `chorus local`.
    """
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
