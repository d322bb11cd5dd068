"""Must show: a real Prometheus scrapes a running local cluster while flows run, and every query of every
dashboard panel returns data through Prometheus's HTTP API.

The cluster is the server plus one worker group per pool, each with its own metrics port, on a database and a
Redis database of its own. The ai pool and the scheduler do not record their metrics yet, so a stand-in target
in this process records LLM calls and schedule fires through the same public functions they will call
(`record_llm_call`, `record_gen_ai_call`, `record_schedule_fire`): their panels prove their queries, not those
components.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from orchestrator.cli.embedded import free_port
from orchestrator.core.states import TERMINAL
from orchestrator.observability.metrics import (
    CONTENT_TYPE,
    exposition,
    record_gen_ai_call,
    record_llm_call,
    record_schedule_fire,
)
from orchestrator.settings import load_settings
from tests.conftest import empty_redis_db, flush_redis_db
from tests.harness import prometheus, services
from tests.harness.cluster import Cluster
from tests.harness.dashboards import queries

pytestmark = pytest.mark.needs_prometheus

NAMESPACE = "tests.dashboards"
FLOWS = {
    "mixed": """
id: mixed
namespace: tests.dashboards
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: hello
  - id: ping
    type: io.kestra.plugin.core.http.Request
    uri: "{health}"
  - id: answer
    type: io.kestra.plugin.core.debug.Return
    format: "{{ outputs.ping.code }}"
""",
    "failing": """
id: failing
namespace: tests.dashboards
tasks:
  - id: boom
    type: io.kestra.plugin.core.execution.Fail
    errorMessage: planned failure
""",
    "retrying": """
id: retrying
namespace: tests.dashboards
tasks:
  - id: flaky
    type: io.kestra.plugin.core.execution.Fail
    retry:
      type: constant
      interval: PT0.2S
      maxAttempt: 2
""",
}


#: Deployed, never run: a declared budget has its limit and remaining series from the start (the API reads them).
BUDGETED = """
id: budgeted
namespace: tests.dashboards
tasks:
  - id: ask
    type: io.kestra.plugin.openai.ChatCompletion
    model: gpt-4o-mini
    prompt: hello
    budget:
      maxTokens: 1000
      scope: FLOW
"""


@dataclass
class DashboardCluster:
    api: httpx.Client
    server_target: str
    worker_targets: list[str]


@pytest.fixture(scope="module")
def cluster(admin_url: str, template_database: str, redis_url: str) -> Iterator[DashboardCluster]:
    name = services.unique_database_name("dash")
    database_url = services.create_database(admin_url, name, template=template_database)
    broker = empty_redis_db(services.redis_url(), exclude=redis_url)  # not the e2e stack's queues
    env = {"CHORUS_DATABASE_URL": database_url, "CHORUS_BROKER_URL": broker, "CHORUS_SWEEP_INTERVAL_S": "0.2"}
    pools = load_settings(database_url=database_url, broker_url=broker).pools
    try:
        with Cluster(env) as cluster, httpx.Client(base_url=cluster.api_url, timeout=30) as client:
            # One worker group per pool, each with a metrics port of its own (a Prometheus target each).
            targets = []
            cluster.start_server(wait=False)
            for pool in pools:
                metrics_port = free_port()
                cluster.start_worker(pool, concurrency=1, env={"CHORUS_METRICS_PORT": str(metrics_port)})
                targets.append(f"127.0.0.1:{metrics_port}")
            cluster.wait_healthy()
            yield DashboardCluster(client, f"127.0.0.1:{cluster.port}", targets)
    finally:
        services.drop_database(admin_url, name)
        flush_redis_db(broker)


@pytest.fixture(scope="module")
def standin_target() -> Iterator[str]:
    """Serves this process's metrics, where the stand-in LLM calls and schedule fires are recorded."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = exposition()
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _record_standin_usage() -> None:
    for model, outcome in (("gpt-4o-mini", "ok"), ("gpt-4o-mini", "error"), ("llama3", "ok")):
        record_llm_call(
            "openai", model, outcome=outcome, prompt_tokens=120, completion_tokens=40, cost_usd=0.002, duration_s=0.4
        )
        record_gen_ai_call(
            "chat", "openai", model, model, input_tokens=120, output_tokens=40, cost_usd=0.002, duration_s=0.4,
            error_type=None if outcome == "ok" else "LLM call failed with HTTP 500",
        )  # fmt: skip
    record_schedule_fire(NAMESPACE, "mixed", lag_s=0.05)


def _run_flows(cluster: DashboardCluster, rounds: int) -> list[str]:
    health = f"http://{cluster.server_target}/health"
    for source in FLOWS.values():
        response = cluster.api.post(
            "/flows", content=source.replace("{health}", health), headers={"Content-Type": "application/x-yaml"}
        )
        assert response.status_code == 200, response.text
    deployed = cluster.api.post("/flows", content=BUDGETED, headers={"Content-Type": "application/x-yaml"})
    assert deployed.status_code == 200, deployed.text
    ids = []
    for _ in range(rounds):
        for flow_id in FLOWS:
            response = cluster.api.post(f"/executions/{NAMESPACE}/{flow_id}")
            assert response.status_code == 200, response.text
            ids.append(response.json()["id"])
        assert cluster.api.get("/executions/no-such-execution").status_code == 404  # a 4xx for the error ratio
        _record_standin_usage()
        time.sleep(1)
    return ids


def _wait_all_ended(cluster: DashboardCluster, ids: list[str], timeout_s: float = 60) -> dict[str, str]:
    deadline = time.monotonic() + timeout_s
    states: dict[str, str] = {}
    while time.monotonic() < deadline:
        states = {i: cluster.api.get(f"/executions/{i}").json()["state"]["current"] for i in ids}
        if all(s in TERMINAL for s in states.values()):
            return states
        time.sleep(0.3)
    raise AssertionError(f"executions still running: {states}")


def _has_data(result: list[dict[str, object]]) -> bool:
    return any(math.isfinite(float(series["value"][1])) for series in result)  # type: ignore[index]


@pytest.mark.slow  # ~30 s with a real Prometheus scraping a cluster: `pytest -m slow`
def test_every_dashboard_panel_query_returns_data_from_a_real_prometheus_scraping_the_cluster(
    cluster: DashboardCluster, standin_target: str, tmp_path: Path
) -> None:
    jobs = {
        "chorus-server": [cluster.server_target],
        "chorus-workers": cluster.worker_targets,
        "chorus-standin": [standin_target],
    }
    with prometheus.running(jobs, tmp_path) as prom:
        ids = _run_flows(cluster, rounds=8)
        states = _wait_all_ended(cluster, ids)
        assert {"SUCCESS", "FAILED"} <= set(states.values()), states
        assert set(prom.targets_up().values()) == {1.0}, prom.targets_up()
        all_queries = list(queries())
        # rate() needs two scrapes of a series after its first sample: on a loaded machine the last
        # executions can end in one burst, so poll (bounded) instead of sleeping a fixed time.
        deadline = time.monotonic() + 30
        while True:
            empty = [
                f"{q.dashboard} #{q.panel_id} {q.panel_title!r}: {q.evaluable()}"
                for q in all_queries
                if not _has_data(prom.query(q.evaluable()))
            ]
            if not empty or time.monotonic() > deadline:
                break
            time.sleep(1)

    assert len(all_queries) >= 30
    assert not empty, "panels without data:\n" + "\n".join(empty)
