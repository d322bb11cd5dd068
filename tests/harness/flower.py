"""A real Flower (`chorus flower`) on the e2e stack's broker, one per session: starting it takes seconds."""

from __future__ import annotations

import ast
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from orchestrator.celery_app import RUN_INLINE, RUN_TASK_RUN
from orchestrator.cli.embedded import free_port
from tests.harness.cluster import start_chorus, stop
from tests.harness.services import wait_http
from tests.harness.stack import Stack

__all__ = ["FLOWER_AUTH", "Flower", "flower"]

FLOWER_AUTH = ("ops", "flower-secret-1")


@dataclass
class Flower:
    url: str
    client: httpx.Client

    def task_of(self, execution_id: str, task_id: str, timeout_s: float = 15) -> tuple[str, str, dict[str, Any]]:
        """The Celery task that ran `task_id` of an execution (its id, name and kwargs), found as an operator
        would: Flower's search. Inline task runs (Log, Fail, Return...) share one `run_inline` message."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for name in (RUN_TASK_RUN, RUN_INLINE):
                tasks = self.client.get("/api/tasks", params={"taskname": name, "search": execution_id}).json()
                for uuid, info in tasks.items():
                    kwargs = ast.literal_eval(info["kwargs"]) if info.get("kwargs") else {}
                    ran = [kwargs.get("task_id"), *(r.get("task_id") for r in kwargs.get("runs", []))]
                    if task_id in ran and info.get("state") in ("SUCCESS", "FAILURE"):
                        return uuid, name, kwargs
            time.sleep(0.2)
        raise AssertionError(f"Flower does not show {task_id} of {execution_id}")


@pytest.fixture(scope="session")
def flower(stack: Stack) -> Iterator[Flower]:
    port = free_port()
    env = {
        **stack.env,
        "CHORUS_FLOWER_PORT": str(port),
        "CHORUS_FLOWER_USERNAME": FLOWER_AUTH[0],
        "CHORUS_FLOWER_PASSWORD": FLOWER_AUTH[1],
    }
    process = start_chorus("flower", env, log=Path(os.devnull))
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/healthcheck", process, timeout_s=30)
        with httpx.Client(base_url=url, auth=FLOWER_AUTH, timeout=15) as client:
            yield Flower(url, client)
    finally:
        stop(process)
