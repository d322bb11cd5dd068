"""Chorus's controller: the pure core, the store, the engine, the triggers, observability and the CLI.

Read orchestrator/README.md first: where SQL lives, who may write state, how a task run travels.
"""
