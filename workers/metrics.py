"""A worker group's metrics: Celery signals feed them, the main process serves them on their own port.

Prefork pool processes each write their samples to files in a multiprocess directory that the main
process prepares (emptied or freshly made) at `worker_init`, before any pool process is forked, and
aggregates on every scrape. Task-run metrics by task type come from the engine's hooks, which the
pool processes' engines carry (see `install`).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from celery import Celery, Task
from celery.signals import task_postrun, task_prerun, worker_init, worker_process_shutdown, worker_shutdown
from prometheus_client.multiprocess import mark_process_dead

from orchestrator.engine import Engine
from orchestrator.engine.metrics_hooks import UNKNOWN, MetricsHooks
from orchestrator.observability.metrics import (
    MetricsSettings,
    metrics,
    prepare_multiprocess_dir,
    remove_multiprocess_dir,
    serve_metrics,
)

logger = logging.getLogger(__name__)

#: The pool of the Celery task this thread runs (set by task_prerun, which runs in the task's own thread).
_running = threading.local()


def running_pool() -> str:
    """The pool whose message this thread is working on, `unknown` outside a task."""
    return getattr(_running, "pool", UNKNOWN)


@contextmanager
def model_call_in_flight() -> Iterator[None]:
    """Count one outstanding model call of this thread's pool for as long as the block runs."""
    gauge = metrics().llm_calls_in_flight.labels(running_pool())
    gauge.inc()
    try:
        yield
    finally:
        gauge.dec()


class _WorkerMetrics:
    """The state the signal handlers share within one process."""

    def __init__(self, settings: MetricsSettings, pools: Sequence[str], engine_of: Callable[[], Engine]) -> None:
        self.settings = settings
        self.pools = frozenset(pools)
        self.engine_of = engine_of
        self.started: dict[str, tuple[float, str]] = {}  #: Celery task id -> (start, pool)
        self.lock = threading.Lock()
        self.directory: Path | None = None
        self.created_directory = False
        self.server: Any = None

    def pool_of(self, task: Task) -> str:
        info = getattr(task.request, "delivery_info", None) or {}
        queue = info.get("routing_key")
        return queue if queue in self.pools else UNKNOWN

    def ensure_engine_hooks(self) -> None:
        engine = self.engine_of()
        if not any(isinstance(hook, MetricsHooks) for hook in engine.hooks):
            engine.hooks.append(MetricsHooks(metrics()))


def install(app: Celery, settings: MetricsSettings, pools: Sequence[str], engine_of: Callable[[], Engine]) -> None:
    """Connect the worker signals of `app`; `engine_of` returns this process's Engine (hooks are added to it)."""
    state = _WorkerMetrics(settings, pools, engine_of)

    def _start(**_: Any) -> None:
        state.created_directory = settings.dir is None
        state.directory = prepare_multiprocess_dir(settings.dir)
        logger.info("metrics of this worker group are kept in %s", state.directory)
        state.server = serve_metrics(settings)

    def _stop(**_: Any) -> None:
        if state.server is not None:
            state.server.shutdown()
        if state.created_directory and state.directory is not None:
            remove_multiprocess_dir(state.directory)

    def _process_gone(pid: int | None = None, **_: Any) -> None:
        # Live gauges (tasks in flight) must stop counting a pool process that has exited.
        if state.directory is not None:
            mark_process_dead(pid or os.getpid(), path=str(state.directory))  # type: ignore[no-untyped-call]

    def _before(task_id: str, task: Task, **_: Any) -> None:
        state.ensure_engine_hooks()
        pool = state.pool_of(task)
        with state.lock:
            state.started[task_id] = (time.perf_counter(), pool)
        _running.pool = pool
        metrics().celery_tasks_in_flight.labels(pool).inc()

    def _after(task_id: str, task: Task, **kwargs: Any) -> None:
        with state.lock:
            started = state.started.pop(task_id, None)
        _running.pool = UNKNOWN
        if started is None:
            return
        began, pool = started
        m = metrics()
        m.celery_tasks_in_flight.labels(pool).dec()
        outcome = str(kwargs.get("state") or UNKNOWN).lower()
        m.celery_task_duration.labels(pool, task.name, outcome).observe(time.perf_counter() - began)

    # weak=False: the handlers are closures that nothing else keeps alive.
    worker_init.connect(_start, weak=False)
    worker_shutdown.connect(_stop, weak=False)
    worker_process_shutdown.connect(_process_gone, weak=False)
    task_prerun.connect(_before, weak=False)
    task_postrun.connect(_after, weak=False)
