"""A PostgreSQL restart: the API answers 503 with Retry-After meanwhile (the request was fine) and 200 once it is
back, and no claim is taken over before its worker could heartbeat again."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from orchestrator.engine import TaskRunCoordinates
from orchestrator.store.database import transaction
from tests.chaos.cluster import ChaosCluster, ClusterShape
from tests.harness.engines import open_engine

pytestmark = [pytest.mark.chaos, pytest.mark.slow]  # a browser or a cluster per test: `pytest -m slow`

FLOW = """
id: hello
namespace: chaos.outage
tasks:
  - id: hi
    type: io.kestra.plugin.core.log.Log
    message: hi
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChaosCluster]:
    root = tmp_path_factory.mktemp("outage")
    root.chmod(0o711)  # PostgreSQL runs as another account when we are root
    cluster = ChaosCluster(root, ClusterShape(workers=0))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def test_the_api_answers_503_while_the_database_is_down_and_recovers(cluster: ChaosCluster) -> None:
    deployed = cluster.api.post("/flows", content=FLOW, headers={"Content-Type": "application/x-yaml"})
    assert deployed.status_code == 200, deployed.text

    cluster.stop_postgres()
    during = [
        cluster.api.get("/flows/chaos.outage/hello"),
        cluster.api.get("/executions/search"),
        cluster.api.post("/executions/chaos.outage/hello"),
        cluster.api.get("/executions/unknown/audit"),
    ]
    cluster.start_postgres()
    after = cluster.api.get("/flows/chaos.outage/hello")

    assert [r.status_code for r in during] == [503, 503, 503, 503]
    for response in during:
        assert response.headers["Retry-After"] == "2"
        assert response.json()["_embedded"]["errors"][0]["path"] == "database"
    assert after.status_code == 200


def test_a_claim_is_not_taken_over_until_its_worker_could_heartbeat_after_a_restart(cluster: ChaosCluster) -> None:
    broker = f"redis://127.0.0.1:{cluster.redis_port}/0"
    with open_engine(cluster.database_url, pool_size=1, broker_url=broker, stale_after_s=3) as engine:
        row = engine.deploy_flow(FLOW, actor="test")
        with transaction(engine.sessions) as session:
            execution = engine.create_execution(session, row, engine.flow_of(row), {}, [], actor="test")
        at = TaskRunCoordinates(execution.id, "hi", None, None, 1)
        assert engine.claim(at, owner="live", celery_task_id="first") is not None

        cluster.stop_postgres()
        time.sleep(4)  # longer than the staleness window: every heartbeat is now "old"
        cluster.start_postgres()
        # A message queued before the outage arrives first: its claimant may be alive, waiting to record.
        right_after = engine.claim(at, owner="late", celery_task_id="second")
        time.sleep(3.5)  # a live claimant would have heartbeaten by now; this one never does
        later = engine.claim(at, owner="late", celery_task_id="third")

    assert right_after is None
    assert later is not None and later.owner == "late"
