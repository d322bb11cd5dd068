"""Two `chorus scheduler` processes on the real stack: the leader is killed, the standby takes over, and a
per-second schedule fires every slot exactly once across the change."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from orchestrator.cli.embedded import free_port
from tests.e2e.conftest import Stack
from tests.harness.cluster import start_chorus, stop_all

EVERY_SECOND = """
id: failover
namespace: {ns}
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: "{{ trigger.date }}"
triggers:
  - id: every-second
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "* * * * * *"
"""


@pytest.fixture
def schedulers(stack: Stack) -> Iterator[list[subprocess.Popen[bytes]]]:
    processes = []
    for _ in range(2):
        env = {**stack.env, "CHORUS_SCHEDULER_INTERVAL_S": "0.2", "CHORUS_METRICS_PORT": str(free_port())}
        processes.append(start_chorus("scheduler", env))
    yield processes
    stop_all(processes)


def trigger_dates(stack: Stack, namespace: str) -> list[datetime]:
    params: dict[str, str | int] = {"namespace": namespace, "flowId": "failover", "size": 500}
    results = stack.api.get("/executions/search", params=params).json()["results"]
    return sorted(datetime.fromisoformat(r["trigger"]["variables"]["date"]) for r in results)


def wait_for_count(stack: Stack, namespace: str, count: int, timeout_s: float = 20) -> list[datetime]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        dates = trigger_dates(stack, namespace)
        if len(dates) >= count:
            return dates
        time.sleep(0.2)
    raise AssertionError(f"fewer than {count} executions within {timeout_s}s")


def test_killing_the_leader_loses_and_duplicates_no_slot(
    stack: Stack,
    schedulers: list[subprocess.Popen[bytes]],
    deploy_flow: Callable[[str], dict[str, Any]],
    unique_namespace: str,
) -> None:
    deploy_flow(EVERY_SECOND)
    try:
        before = len(wait_for_count(stack, unique_namespace, 2))
        os.killpg(schedulers[0].pid, signal.SIGKILL)  # whichever was leading, one replica dies mid-flight
        wait_for_count(stack, unique_namespace, before + 3)
    finally:
        stack.api.delete(f"/flows/{unique_namespace}/failover")
    time.sleep(1)  # a tick that started before the delete may still commit its slot
    dates = trigger_dates(stack, unique_namespace)
    assert len(dates) == len(set(dates)), "a slot fired twice"
    gaps = [b - a for a, b in itertools.pairwise(dates)]
    assert all(gap == timedelta(seconds=1) for gap in gaps), f"a slot was lost: {gaps}"
    assert schedulers[1].poll() is None
