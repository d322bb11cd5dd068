"""Wait on state instead of sleeping: poll a condition until it holds, failing with what was last seen."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import httpx

from orchestrator.core.states import TERMINAL

T = TypeVar("T")


def wait_until(
    check: Callable[[], T | None], *, timeout_s: float = 30, interval_s: float = 0.05, message: str = "condition"
) -> T:
    """Call `check` until it returns something truthy, and return that; fail after `timeout_s` seconds.

    The check runs once more after the deadline, so a slow poll never fails a condition that became true.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        seen = check()
        if seen:
            return seen
        if time.monotonic() >= deadline:
            raise AssertionError(f"{message} not met within {timeout_s}s (last seen: {seen!r})")
        time.sleep(interval_s)


def wait_for_state(
    api: httpx.Client, execution_id: str, states: set[str] | None = None, *, timeout_s: float = 30
) -> dict[str, Any]:
    """Poll `GET /executions/{id}` until its state is one of `states` (default: any terminal state)."""
    wanted = states or TERMINAL
    seen: dict[str, Any] = {}

    def reached() -> dict[str, Any] | None:
        seen.clear()
        seen.update(api.get(f"/executions/{execution_id}").json())
        return dict(seen) if seen.get("state", {}).get("current") in wanted else None

    try:
        return wait_until(reached, timeout_s=timeout_s, message=f"execution {execution_id} in {sorted(wanted)}")
    except AssertionError:
        raise AssertionError(f"execution {execution_id} still {seen.get('state')} after {timeout_s}s") from None
