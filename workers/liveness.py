"""Worker liveness: a file the Celery consumer touches while it runs and holds its broker connection.

A probe on the metrics port only proved the metrics thread alive: a worker whose consumer loop hung, or
that lost the broker for good, still answered it. The consumer's own timer touches the file instead: in a
prefork worker that timer runs inside the consumer's event loop, so a stuck loop stops the touches, and
each touch first checks the consumer is running with a live broker connection. Kubernetes or Compose
then checks the file's age (`is_fresh`; the chart inlines the same test in a stdlib one-liner).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from celery import Celery, bootsteps

logger = logging.getLogger(__name__)


def is_fresh(path: Path, max_age_s: float) -> bool:
    """Whether `path` was touched less than `max_age_s` ago (False when it does not exist)."""
    try:
        return time.time() - path.stat().st_mtime < max_age_s
    except FileNotFoundError:
        return False


def _consumer_alive(consumer: Any) -> bool:
    connection = consumer.connection
    return bool(consumer.blueprint.state == bootsteps.RUN and connection is not None and connection.connected)


def install(app: Celery, path: Path, interval_s: float) -> None:
    """Touch `path` every `interval_s` from the consumer's timer while the consumer is alive."""

    class AliveFile(bootsteps.StartStopStep):  # type: ignore[misc]  # celery is untyped
        requires = ("celery.worker.consumer.tasks:Tasks",)  # started once it consumes, not before

        def __init__(self, parent: Any, **kwargs: Any) -> None:
            super().__init__(parent, **kwargs)
            self._timer_ref: Any = None

        def _touch(self, consumer: Any) -> None:
            if not _consumer_alive(consumer):
                logger.warning("worker not alive (consumer stopped or broker connection lost): %s left stale", path)
                return
            path.touch()

        def start(self, parent: Any) -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._touch(parent)
            self._timer_ref = parent.timer.call_repeatedly(interval_s, self._touch, (parent,), priority=10)

        def stop(self, parent: Any) -> None:
            if self._timer_ref is not None:
                self._timer_ref.cancel()
            # A stopping consumer is not alive: the probe must not see the last touch as fresh.
            path.unlink(missing_ok=True)

    app.steps["consumer"].add(AliveFile)
