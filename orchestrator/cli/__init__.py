"""The `chorus` command line: the only composition root (see main.main)."""

from orchestrator.cli.main import main

__all__ = ["main"]
