"""`/triggers`: search with next fire, enable/disable, unlock, and backfill control, in Kestra's shape."""

from __future__ import annotations

from fastapi.testclient import TestClient

FLOW = """
id: nightly
namespace: tests.api.triggers
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: hi
triggers:
  - id: nightly
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "0 2 * * *"
"""

BASE = "/api/v1/main"
REF = {"namespace": "tests.api.triggers", "flowId": "nightly", "triggerId": "nightly"}


def deploy(client: TestClient) -> None:
    response = client.post(f"{BASE}/flows", content=FLOW, headers={"Content-Type": "application/x-yaml"})
    assert response.status_code == 200, response.text


def test_search_lists_schedule_triggers_with_their_next_fire(client: TestClient) -> None:
    deploy(client)
    response = client.get(f"{BASE}/triggers/search", params={"namespace": "tests.api"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["total"] == 1
    context = body["results"][0]["triggerContext"]
    assert context["triggerId"] == "nightly" and context["disabled"] is False
    assert "T02:00:00" in context["nextExecutionDate"]
    assert client.get(f"{BASE}/triggers/tests.api.triggers/nightly").json()["total"] == 1


def test_a_trigger_is_disabled_and_enabled_through_put(client: TestClient) -> None:
    deploy(client)
    response = client.put(f"{BASE}/triggers", json={**REF, "disabled": True})
    assert response.status_code == 200, response.text
    assert response.json()["triggerContext"]["disabled"] is True
    assert client.put(f"{BASE}/triggers", json={**REF, "disabled": False}).json()["triggerContext"]["disabled"] is False


def test_a_backfill_is_started_paused_resumed_and_deleted(client: TestClient) -> None:
    deploy(client)
    backfill = {"start": "2025-01-01T00:00:00Z", "end": "2025-01-03T00:00:00Z", "labels": {"why": "replay"}}
    response = client.put(f"{BASE}/triggers", json={**REF, "backfill": backfill})
    assert response.status_code == 200, response.text
    assert response.json()["triggerContext"]["backfill"]["currentDate"].startswith("2025-01-01T02:00:00")
    paused = client.put(f"{BASE}/triggers/backfill/pause", json=REF).json()
    assert paused["triggerContext"]["backfill"]["paused"] is True
    assert (
        client.put(f"{BASE}/triggers/backfill/unpause", json=REF).json()["triggerContext"]["backfill"]["paused"]
        is False
    )
    deleted = client.post(f"{BASE}/triggers/backfill/delete", json=REF)
    assert deleted.status_code == 200 and "backfill" not in deleted.json()["triggerContext"]
    assert client.post(f"{BASE}/triggers/backfill/delete", json=REF).status_code == 409


def test_unlock_answers_the_rescheduled_trigger(client: TestClient) -> None:
    deploy(client)
    response = client.post(f"{BASE}/triggers/tests.api.triggers/nightly/nightly/unlock")
    assert response.status_code == 200, response.text
    assert response.json()["triggerContext"]["nextExecutionDate"] is not None


def test_an_unknown_trigger_is_404(client: TestClient) -> None:
    response = client.put(f"{BASE}/triggers", json={**REF, "triggerId": "nope", "disabled": True})
    assert response.status_code == 404
