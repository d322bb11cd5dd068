"""A task's `timeout`: the attempt fails (retryable) when its handler runs past it.

Celery's prefork pool runs a task in the main thread of a child process, where SIGALRM can interrupt
blocking code; elsewhere (thread pools, tests calling handlers directly) the timeout is checked after
the handler returns. Script tasks also enforce their own timeout on the subprocess group.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from types import FrameType
from typing import Any

from orchestrator.core.errors import TaskFailed


class _Expired(BaseException):
    """Raised inside the handler by the alarm; a BaseException so handlers' `except Exception` let it pass."""


def timeout_error(limit: timedelta) -> TaskFailed:
    return TaskFailed(f"Timeout after {limit.total_seconds():g}s", retryable=True)


#: Tasks that enforce `timeout` themselves (a script's process group, an HTTP or model call) get this
#: much longer to do it cleanly before the alarm interrupts them.
GRACE = timedelta(seconds=2)


@contextmanager
def deadline(limit: timedelta | None, *, grace: timedelta = GRACE) -> Iterator[None]:
    """Interrupt the block after `limit` + `grace` (main thread only) with a retryable TaskFailed."""
    if limit is None or limit.total_seconds() <= 0 or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: FrameType | None) -> Any:
        raise _Expired

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, (limit + grace).total_seconds())
    try:
        yield
    except _Expired:
        raise timeout_error(limit) from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
