"""Waiting for an execution to reach a state inside a request, without blocking the event loop.

`wait=true` on execution creation and webhooks with `wait`/`returnOutputs` answer only once the execution
has moved on. The database read runs in a worker thread and the pause between reads is `anyio.sleep`, so a
waiting request holds no event-loop time; the wait ends at the settings' `wait_timeout_s`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import anyio.to_thread
from fastapi import Request

from orchestrator import store
from orchestrator.draining import draining
from orchestrator.engine import Engine
from orchestrator.store.tables import ExecutionRow

POLL_S = 0.05


def _read(eng: Engine, execution_id: str) -> ExecutionRow | None:
    with eng.sessions() as session:
        return store.get_execution(session, execution_id)


async def wait_for_execution(
    eng: Engine,
    execution_id: str,
    reached: Callable[[ExecutionRow], bool],
    *,
    request: Request | None = None,
    stop_when_draining: bool = False,
) -> ExecutionRow | None:
    """The execution once `reached` holds for it; None when the time is up first.

    With `request`, also None as soon as its client has gone (nobody would read the answer); with
    `stop_when_draining`, as soon as the server is shutting down (a pending wait must not hold a SIGTERM).
    """
    deadline = time.monotonic() + eng.settings.wait_timeout_s
    while time.monotonic() < deadline and not (stop_when_draining and draining.is_set()):
        current = await anyio.to_thread.run_sync(_read, eng, execution_id)
        if current is not None and reached(current):
            return current
        if request is not None and await request.is_disconnected():
            return None
        await anyio.sleep(POLL_S)
    return None
