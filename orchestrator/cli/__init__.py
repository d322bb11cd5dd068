"""The `chorus` command line, the only composition root: it builds settings, the engine and the processes.

It may import everything in `orchestrator`; it names the API (`api.app:create_app`) and the workers
(`workers.app`) only by import string, so nothing in `orchestrator` imports `api` or `workers`. `main` is
the entry point (`chorus`, `python -m orchestrator.cli`); the command bodies live in the modules it names.
"""

from orchestrator.cli.main import main

__all__ = ["main"]
