"""Run a jq program on a value in a helper process (`jq_child`) that is killed at the render's deadline.

The PyPI `jq` binding runs jq's C interpreter in-process: no Python-level deadline can stop it
(`last(range(15000000))` held the API for 10 s) and it sees the process environment (`env`, `$ENV`).
So each program runs in a small helper process started with an empty environment, under an address-space
and CPU cap, and the caller waits for its answer only until the deadline; past it the helper is killed
and the next call starts a fresh one. Idle helpers are kept (a few per process) because starting one
costs about 50 ms and a jq call through a warm helper well under one.

This is the only place the pure core starts a process: it does no I/O on anyone's behalf, it only puts
a wall around C code.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

from orchestrator.core import jq_child
from orchestrator.core.errors import ExpressionError, ExpressionLimitExceeded

__all__ = ["JqRun", "run"]

#: Helpers per process that may run at once; more concurrent calls wait (within their deadline) for one.
MAX_HELPERS = 4
_READ_CHUNK = 1 << 16
#: A helper that is not ready by then (an overloaded machine) fails the call rather than the whole render.
_STARTUP_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class JqRun:
    """The outputs of one jq program, and the time spent starting a helper (not the program's to pay)."""

    results: list[Any]
    startup_s: float


class _Helper:
    """One helper process and the pipes to it; used by one call at a time."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            # By path, so the helper needs neither this package on its path nor anything but jq and the stdlib.
            [sys.executable, "-I", jq_child.__file__],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={},  # nothing to leak, and no HOME: jq would otherwise load ~/.jq
            cwd="/",
            close_fds=True,
            bufsize=0,
        )
        try:
            self._read(time.monotonic() + _STARTUP_TIMEOUT_S)  # its "ready" line
        except (_TimedOut, _HelperDied) as e:
            self.kill()
            raise ExpressionError(f"jq: the helper process did not start ({sys.executable} {jq_child.__file__})") from e
        except BaseException:
            self.kill()
            raise

    def call(self, request: bytes, timeout_s: float) -> dict[str, Any]:
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(request)
        except BrokenPipeError as e:
            raise _HelperDied from e
        return self._read(time.monotonic() + timeout_s)

    def _read(self, deadline: float) -> dict[str, Any]:
        assert self.process.stdout is not None
        reply = bytearray()
        fd = self.process.stdout.fileno()
        while not reply.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                raise _TimedOut
            chunk = os.read(fd, _READ_CHUNK)
            if not chunk:
                raise _HelperDied
            reply += chunk
        answer: dict[str, Any] = json.loads(reply)
        return answer

    def kill(self) -> None:
        self.process.kill()  # SIGKILL; Popen ignores a process that is already gone
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                pipe.close()
        self.process.wait()


class _TimedOut(Exception):
    pass


class _HelperDied(Exception):
    pass


class _Pool:
    """The idle helpers of one process, and a bound on how many run at once."""

    def __init__(self) -> None:
        self._idle: list[_Helper] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(MAX_HELPERS)

    def run(self, request: bytes, timeout_s: float) -> tuple[dict[str, Any], float]:
        if not self._slots.acquire(timeout=max(timeout_s, 0.0)):
            raise ExpressionLimitExceeded("jq: every jq helper stayed busy past the expression's time limit")
        try:
            with self._lock:
                helper = self._idle.pop() if self._idle else None
            started = time.monotonic()
            helper = helper or _Helper()
            startup_s = time.monotonic() - started
            done = False
            try:
                answer = helper.call(request, timeout_s)
                done = True
            finally:
                # A helper interrupted in any way (deadline, a task timeout's signal) is in an unknown state.
                if done:
                    with self._lock:
                        self._idle.append(helper)
                else:
                    helper.kill()
            return answer, startup_s
        finally:
            self._slots.release()


#: One pool per process id: a forked child (Celery's prefork pool) must not share its parent's pipes, and
#: keeping the parent's pool referenced here spares its helpers from being reaped by the child.
_POOLS: dict[int, _Pool] = {}


def _pool() -> _Pool:
    pool = _POOLS.get(os.getpid())
    return pool if pool is not None else _POOLS.setdefault(os.getpid(), _Pool())


def run(program: str, value: Any, *, timeout_s: float, max_chars: int) -> JqRun:
    """Apply `program` to `value` (plain JSON data) and return every output; ExpressionError on any failure.

    ExpressionLimitExceeded when it runs past `timeout_s`, or past the helper's memory, CPU or output caps.
    """
    if timeout_s <= 0:  # nothing left of the render's time: do not start a program only to kill its helper
        raise ExpressionLimitExceeded(f"jq: no time left to run {program!r} within the expression's time limit")
    request = json.dumps({"program": program, "input": value, "max_chars": max_chars, "cpu_s": timeout_s}) + "\n"
    try:
        answer, startup_s = _pool().run(request.encode(), timeout_s)
    except _TimedOut as e:
        raise ExpressionLimitExceeded(f"jq: {program!r} took longer than its time limit") from e
    except _HelperDied as e:
        raise ExpressionLimitExceeded(f"jq: {program!r} went past its memory or CPU limit") from e
    if "error" in answer:
        kind = ExpressionLimitExceeded if answer.get("limit") else ExpressionError
        raise kind(f"jq: cannot apply {program!r}: {answer['error']}")
    return JqRun(answer["results"], startup_s)
