"""Children that die with the process that started them: the parent-death signal, and a lifeline for grandchildren.

Linux's parent-death signal (`PR_SET_PDEATHSIG`) reaches only a direct child, and is sent when the *thread* that
started it ends. A Celery worker's prefork pool processes are grandchildren of `chorus local`, and the commands a
scripts-pool task runs are further down, each in a session of its own. So `chorus local` also holds the write end
of a pipe (the lifeline) whose read end it hands to its worker: the kernel closes the write end however
`chorus local` ends (SIGKILL, the OOM killer), each worker process watching the read end from a thread sees EOF,
and kills what it started and then the worker's process group (the worker runs in a session of its own).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable

import psutil

logger = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def parent_death_signal(stop_signal: signal.Signals) -> Callable[[], None] | None:
    """A pre-exec hook asking Linux to send the child `stop_signal` when we die (None off Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def hook() -> None:
        # Runs in the child after setuid (which would clear the setting). The signal goes out when the *thread*
        # that started the child ends, so start children from the main thread.
        prctl(_PR_SET_PDEATHSIG, int(stop_signal), 0, 0, 0)
        if os.getppid() != parent:  # we died before the hook ran
            os._exit(1)

    return hook


def die_with_parent_process(stop_signal: int = signal.SIGKILL) -> None:
    """Ask Linux to send this process `stop_signal` when its parent ends (for forked, not exec'd, children)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(stop_signal), 0, 0, 0)


def open_lifeline() -> tuple[int, int]:
    """Return (read end for the child, write end we keep); only the read end is inherited (`pass_fds`)."""
    read_fd, write_fd = os.pipe()  # both close-on-exec: no other child can keep the write end open
    return read_fd, write_fd


def watch_lifeline(fd: int, *, kill_group: bool) -> threading.Thread:
    """Watch the read end `fd` from a daemon thread; at EOF kill our descendants and, with `kill_group`, our group.

    Call it in every process of the worker (the main process and each pool process after fork): any of them may
    be the first to notice, and a pool process's descendants (script commands in sessions of their own) are
    reachable only from it once the worker's main process is gone.
    """

    def wait_for_eof() -> None:
        try:
            while os.read(fd, 1):
                pass  # the parent never writes; this only guards against a stray byte
        except OSError:
            pass  # the descriptor is closed: we cannot tell, so treat it as the parent's death
        logger.error("the process that started this worker is gone; stopping the worker and what it started")
        kill_descendants()
        if kill_group:
            os.killpg(os.getpgrp(), signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)

    thread = threading.Thread(target=wait_for_eof, name="chorus-lifeline", daemon=True)
    thread.start()
    return thread


def kill_descendants() -> None:
    """SIGKILL every descendant of this process, and the process group of each that leads one."""
    try:
        family = psutil.Process().children(recursive=True)
    except psutil.Error:
        return
    for child in family:
        with contextlib.suppress(psutil.Error, OSError):
            if os.getpgid(child.pid) == child.pid and child.pid != os.getpgrp():
                os.killpg(child.pid, signal.SIGKILL)  # a command in a session of its own, with its children
            child.kill()
