"""Scale-down that never kills work: a worker told to stop drains, then hands back what still runs.

SIGTERM starts Celery's warm shutdown: the worker stops consuming (messages it had reserved go back to the
queue, acks_late) and waits for its running tasks. Kubernetes SIGKILLs the pod when its grace period ends,
which would kill a long task run mid-way and leave its claim to expire. With `CHORUS_WORKER_DRAIN_S` set
(the chart sets it a margin below the grace period), the main process signals each pool process when that
drain time is up; a pool process running a task body (`interruptible`) stops it (a script's process group
with it: workers/scripts.py kills its group on any exception), the runtime releases the claim in the
database and re-queues the message (`Reject(requeue=True)`), and another worker takes the same attempt
over at once. Outside a task body (claiming, recording an outcome) the signal only notes the request: a
transaction is never cut, and what is being recorded is done.

The same interruption serves fencing (`fence`): a pool process whose claim cannot be confirmed for longer than
is safe (its database unreachable, or its claim taken over) stops the task body before the sweeper can give
the attempt to another worker, so two workers never run one attempt at once (workers/runtime.py `_Heartbeat`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

import psutil
from celery.exceptions import Reject
from celery.signals import worker_process_init, worker_shutting_down

logger = logging.getLogger(__name__)

#: How the reason of the `Reject` that re-queues a handed-back message starts (workers/runtime.py raises it,
#: then says why: the worker is stopping, or its claim was fenced off).
HAND_BACK_PREFIX = "handed back: "

#: Sent by a draining worker's main process to its pool processes (lifeline.py uses SIGRTMIN + 3).
HAND_BACK_SIGNAL = int(signal.SIGRTMIN) + 4
#: Sent by a pool process's heartbeat thread to its own process when the claim is lost (see `fence`).
FENCE_SIGNAL = int(signal.SIGRTMIN) + 5


class HandedBack(BaseException):  # a request, not an error: task code's `except Exception` lets it by
    """Raised inside a running task body when its worker's drain time is up."""


class Fenced(HandedBack):
    """Raised inside a running task body whose claim could not be confirmed in time: another worker may take
    the attempt over, so this one must stop."""


_state = threading.local()
_requested = threading.Event()


def _on_hand_back(signum: int, frame: FrameType | None) -> None:
    _requested.set()
    if getattr(_state, "interruptible", False):
        _state.interruptible = False  # raised once: the clean-up that follows must not be cut again
        raise HandedBack()


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """A task body that a drain may stop (raising HandedBack): nothing in it is a database transaction."""
    if _requested.is_set():
        raise HandedBack()
    _state.interruptible = True
    try:
        yield
    finally:
        _state.interruptible = False


def _on_fence(signum: int, frame: FrameType | None) -> None:
    if getattr(_state, "interruptible", False):
        _state.interruptible = False
        raise Fenced()


_fence_armed = False


def arm_fencing() -> None:
    """Let `fence` stop the task body this process runs on its main thread (where signal handlers run)."""
    global _fence_armed
    signal.signal(FENCE_SIGNAL, _on_fence)
    _fence_armed = True


def install_fencing() -> None:
    """Arm fencing in every prefork pool process, where task bodies run on the main thread; a threads pool has
    no such place and is not fenced."""
    worker_process_init.connect(lambda **_: arm_fencing(), weak=False, dispatch_uid="chorus-fence-pool-process")


def fence() -> bool:
    """Stop this process's running task body (raising Fenced in it) if it is interruptible; False when this
    process cannot be fenced (no handler: a threads pool or a process outside Celery's prefork pool)."""
    if not _fence_armed:
        return False
    os.kill(os.getpid(), FENCE_SIGNAL)
    return True


def _hand_back_children() -> None:
    children = psutil.Process().children()
    logger.warning("drain time is up: handing back the task runs of %d pool processes", len(children))
    for child in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child.pid, HAND_BACK_SIGNAL)


class _PlannedRejectLine(logging.Filter):
    """Celery logs every `Reject` at WARNING with a traceback; a hand-back is planned and the runtime's own
    line already says which task run went back, so Celery's line is kept at INFO without the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, Reject) and exc.requeue and str(exc.reason).startswith(HAND_BACK_PREFIX):
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.INFO, logging.getLevelName(logging.INFO)
        return True


def quiet_planned_rejects() -> None:
    """Celery's line about a planned hand-back (a drain or a fenced claim) at INFO, without a traceback."""
    logging.getLogger("celery.app.trace").addFilter(_PlannedRejectLine())


def install(drain_s: float) -> None:
    """Hand back running task runs `drain_s` after this worker was told to stop (prefork pools)."""

    def _pool_process(**_: Any) -> None:
        signal.signal(HAND_BACK_SIGNAL, _on_hand_back)

    def _shutting_down(**_: Any) -> None:
        timer = threading.Timer(drain_s, _hand_back_children)
        timer.daemon = True
        timer.start()

    worker_process_init.connect(_pool_process, weak=False, dispatch_uid="chorus-drain-pool-process")
    worker_shutting_down.connect(_shutting_down, weak=False, dispatch_uid="chorus-drain-shutting-down")
