"""Kestra's execution statistics over HTTP: counts by state per bucket, filters, visibility, bad ranges."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient

from orchestrator.engine.accounts import Binding
from tests.integration.api.conftest import ADMIN, AppFactory, flow_source

STATS = "/api/v1/main/stats/executions/daily"
FAILING = """id: failing
namespace: a
tasks:
  - id: refuse
    type: io.kestra.plugin.core.execution.Fail
    errorMessage: refused
"""
YAML = {"Content-Type": "application/x-yaml"}


def _totals(buckets: list[dict[str, Any]]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for bucket in buckets:
        for state, n in bucket["executionCounts"].items():
            totals[state] = totals.get(state, 0) + n
    return {s: n for s, n in totals.items() if n}


def _run(client: TestClient, namespace: str, flow_id: str, auth: Any = None) -> str:
    started = client.post(f"/api/v1/main/executions/{namespace}/{flow_id}?wait=true", auth=auth)
    assert started.status_code == 200, started.text
    return str(started.json()["state"]["current"])


def test_executions_are_counted_by_state_in_every_minute_of_the_last_hour(make_client: AppFactory) -> None:
    client = make_client()  # the local drive ends these control-only flows in their submit
    for source in (flow_source("a"), flow_source("b"), FAILING):
        assert client.post("/api/v1/main/flows", content=source, headers=YAML).status_code == 200
    assert [_run(client, "a", "hello"), _run(client, "b", "hello"), _run(client, "a", "failing")] == [
        "SUCCESS", "SUCCESS", "FAILED"
    ]  # fmt: skip
    now = datetime.now(UTC)
    window = {"startDate": (now - timedelta(hours=1)).isoformat(), "endDate": (now + timedelta(minutes=1)).isoformat()}

    buckets = client.post(STATS, json=window).json()

    assert {b["groupBy"] for b in buckets} == {"minute"} and len(buckets) in (61, 62, 63)
    assert _totals(buckets) == {"SUCCESS": 2, "FAILED": 1}
    assert set(buckets[0]["executionCounts"]) >= {"SUCCESS", "FAILED", "RUNNING", "PAUSED"}  # zero-filled
    busy = [b for b in buckets if b["duration"]["count"]]
    assert busy and all(b["duration"]["max"].startswith("PT") for b in busy)
    assert _totals(client.post(STATS, json={**window, "namespace": "a"}).json()) == {"SUCCESS": 1, "FAILED": 1}
    assert _totals(client.post(STATS, json={**window, "state": ["FAILED"]}).json()) == {"FAILED": 1}
    # the default range is the last 30 days, by day
    month = client.post(STATS, json={}).json()
    assert {b["groupBy"] for b in month} == {"day"} and _totals(month) == {"SUCCESS": 2, "FAILED": 1}


def test_a_viewer_counts_only_the_namespaces_it_may_read(make_client: AppFactory) -> None:
    client = make_client(admin_username=ADMIN[0], admin_password=ADMIN[1])
    client.app.state.accounts.create_user("v@x", "viewer-pass-1", [Binding("viewer", "b")], actor="test")  # type: ignore[attr-defined]
    for namespace in ("a", "b"):
        client.post("/api/v1/main/flows", content=flow_source(namespace), headers=YAML, auth=ADMIN)
        _run(client, namespace, "hello", auth=ADMIN)

    assert _totals(client.post(STATS, json={}, auth=ADMIN).json()) == {"SUCCESS": 2}
    assert _totals(client.post(STATS, json={}, auth=("v@x", "viewer-pass-1")).json()) == {"SUCCESS": 1}


def test_a_reversed_or_huge_range_is_422_naming_the_field(client: TestClient) -> None:
    now = datetime.now(UTC)
    reversed_ = client.post(STATS, json={"startDate": now.isoformat(), "endDate": (now - timedelta(1)).isoformat()})
    assert reversed_.status_code == 422
    assert reversed_.json()["_embedded"]["errors"][0]["path"] == "startDate"
    huge = client.post(STATS, json={"startDate": "1900-01-01T00:00:00Z"})
    assert huge.status_code == 422
    bad_state = client.post(STATS, json={"state": ["NOPE"]})
    assert bad_state.status_code == 422 and "state" in bad_state.text
