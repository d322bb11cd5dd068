"""A worker group's traces: each process that runs tasks gets its own tracer provider, after fork.

The batch span processor exports from a thread, and a thread does not survive `fork`: so a prefork group sets
tracing up in every pool process (`worker_process_init`) and flushes it when that process exits; a threads
group, which runs tasks in its main process, does both in the main process.
"""

from __future__ import annotations

from typing import Any

from celery.signals import worker_init, worker_process_init, worker_process_shutdown, worker_shutdown

from orchestrator.observability.tracing import TracingSettings, setup_tracing, shutdown_tracing


def install(pool: str, settings: TracingSettings) -> None:
    """Connect the signals that start and flush tracing in the processes that run tasks (`pool`: Celery's)."""
    if not settings.enabled:
        return  # off: not even the signal handlers

    def _start(**_: Any) -> None:
        setup_tracing("worker", settings)

    def _stop(**_: Any) -> None:
        shutdown_tracing()

    # weak=False: the handlers are closures that nothing else keeps alive.
    if pool == "prefork":
        worker_process_init.connect(_start, weak=False)
        worker_process_shutdown.connect(_stop, weak=False)
    else:
        worker_init.connect(_start, weak=False)
        worker_shutdown.connect(_stop, weak=False)
