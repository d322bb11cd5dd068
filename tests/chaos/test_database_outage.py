"""While PostgreSQL is down the API answers 503 with Retry-After (the request was fine), and 200 once it is back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chaos.cluster import ChaosCluster, ClusterShape

pytestmark = pytest.mark.chaos

FLOW = """
id: hello
namespace: chaos.outage
tasks:
  - id: hi
    type: io.kestra.plugin.core.log.Log
    message: hi
"""


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ChaosCluster]:
    tmp_path.chmod(0o711)  # PostgreSQL runs as another account when we are root
    cluster = ChaosCluster(tmp_path, ClusterShape(workers=0))
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
