"""Wires `chorus local`'s lifeline into every process of its worker, so the worker dies with `chorus local`."""

from __future__ import annotations

import os
import signal
from types import FrameType
from typing import Any

from celery.signals import worker_init, worker_process_init

from orchestrator.lifeline import die_with_parent_process, kill_descendants, watch_lifeline

#: What a pool process gets when the worker's main process ends: a signal it handles (unlike SIGKILL), so that the
#: scripts it started in sessions of their own go with it even when its lifeline thread is not scheduled in time.
_PARENT_GONE = int(signal.SIGRTMIN) + 3


def _die_with_descendants(signum: int, frame: FrameType | None) -> None:
    kill_descendants()
    os._exit(1)


def install(lifeline_fd: int) -> None:
    """Watch `lifeline_fd` in the worker's main process and, after fork, in each pool process."""

    def _main(**_: Any) -> None:
        watch_lifeline(lifeline_fd, kill_group=True)

    def _pool_process(**_: Any) -> None:
        # Threads do not survive fork: each pool process watches for itself, and also dies with the main process.
        signal.signal(_PARENT_GONE, _die_with_descendants)
        die_with_parent_process(_PARENT_GONE)
        watch_lifeline(lifeline_fd, kill_group=True)

    # weak=False: the handlers are closures that nothing else keeps alive.
    worker_init.connect(_main, weak=False)
    worker_process_init.connect(_pool_process, weak=False)
