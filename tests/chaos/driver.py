"""The driver: deploys the workload, submits executions, resumes the paused ones, waits for the end."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

import httpx

from orchestrator.core.states import TERMINAL
from tests.chaos.recorder import Ledger
from tests.chaos.workload import ROOTS, flows


class ClusterView(Protocol):
    """What the driver and the invariants use of a cluster: its API and its database (tests/chaos/cluster.py on
    one host, tests/chaos/netns_cluster.py across network namespaces)."""

    api: httpx.Client

    def sql(self, query: str, *params: object) -> list[tuple[object, ...]]: ...


@dataclass
class Submissions:
    acknowledged: list[str] = field(default_factory=list)  #: ids the API answered with
    refused: int = 0  #: requests that got no answer or an error (the server was down), then retried
    lock: threading.Lock = field(default_factory=threading.Lock)


class Driver:
    def __init__(self, cluster: ClusterView, namespace: str, ledger: Ledger, *, sleep_s: float) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.ledger = ledger
        self.sleep_s = sleep_s
        self.submissions = Submissions()

    def deploy(self) -> None:
        for source in flows(self.namespace, self.ledger, self.sleep_s):
            response = self.cluster.api.post("/flows", content=source, headers={"Content-Type": "application/x-yaml"})
            assert response.status_code == 200, response.text

    def submit(self, count: int, *, threads: int = 4, spacing_s: float = 0.0) -> None:
        """Start `count` executions round-robin over the root flows, each retried (as a client would) until
        the API acknowledges it; refusals are counted. A request that died in flight may still have created
        its execution: the invariants judge every execution in the database, acknowledged or not."""

        def one(index: int) -> None:
            flow_id = ROOTS[index % len(ROOTS)]
            deadline = time.monotonic() + 120
            while True:
                try:
                    response = self.cluster.api.post(f"/executions/{self.namespace}/{flow_id}", timeout=30)
                    if response.status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                with self.submissions.lock:
                    self.submissions.refused += 1
                if time.monotonic() > deadline:
                    return
                time.sleep(0.5)
            with self.submissions.lock:
                self.submissions.acknowledged.append(response.json()["id"])
            if spacing_s:
                time.sleep(spacing_s)

        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(one, range(count)))

    def states(self) -> dict[str, str]:
        rows = self.cluster.sql("SELECT id, state FROM executions WHERE namespace = %s", self.namespace)
        return {str(r[0]): str(r[1]) for r in rows}

    def running(self) -> int:
        rows = self.cluster.sql(
            "SELECT count(*) FROM task_runs t JOIN executions e ON e.id = t.execution_id "
            "WHERE e.namespace = %s AND t.state = 'RUNNING' AND t.claim_owner IS NOT NULL",
            self.namespace,
        )
        return int(rows[0][0])  # type: ignore[call-overload]

    def wait_until_running(self, at_least: int, timeout_s: float = 60) -> None:
        """Wait until some task runs are claimed (the fault must land mid-task)."""
        deadline = time.monotonic() + timeout_s
        while self.running() < at_least:
            if time.monotonic() > deadline:
                raise AssertionError(f"fewer than {at_least} task runs running after {timeout_s}s")
            time.sleep(0.05)

    def drive(self, timeout_s: float) -> float | None:
        """Resume paused executions until every execution ended; returns when (monotonic), None on timeout."""
        deadline = time.monotonic() + timeout_s
        resumed: set[str] = set()
        while time.monotonic() < deadline:
            try:
                states = self.states()
            except Exception:  # the database may be restarting: try again
                time.sleep(0.5)
                continue
            for execution_id, state in states.items():
                if state == "PAUSED" and execution_id not in resumed:
                    try:
                        response = self.cluster.api.post(f"/executions/{execution_id}/actions/resume", timeout=10)
                    except httpx.HTTPError:
                        continue
                    if response.status_code == 200:
                        resumed.add(execution_id)
            if states and all(s in TERMINAL for s in states.values()):
                return time.monotonic()
            time.sleep(0.3)
        return None
