"""Kestra's bulk execution actions (`/executions/{action}/by-ids` and `/by-query`): routing, validation, the
400 naming refused ids, `{"count": n}` and the per-execution audit, in process (no worker; the e2e module
tests/e2e/test_kestra_bulk_actions.py drives pause, resume and restart on the real stack)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.integration.api.conftest import flow_source

YAML = {"Content-Type": "application/x-yaml"}
API = "/api/v1/main"

#: (method, path, body for the by-ids form given a list of ids, query) of every bulk action.
BY_IDS: list[tuple[str, str, Any, dict[str, str]]] = [
    ("DELETE", "/executions/kill/by-ids", None, {}),
    ("POST", "/executions/pause/by-ids", None, {}),
    ("POST", "/executions/resume/by-ids", None, {}),
    ("POST", "/executions/restart/by-ids", None, {}),
    ("POST", "/executions/replay/by-ids", None, {"latestRevision": "true"}),
    ("POST", "/executions/change-status/by-ids", None, {"newStatus": "SUCCESS"}),
    ("POST", "/executions/labels/by-ids", "labels", {}),
    ("POST", "/executions/unqueue/by-ids", None, {}),
    ("POST", "/executions/force-run/by-ids", None, {}),
]
BY_QUERY = [(method, path.replace("by-ids", "by-query"), query) for method, path, _, query in BY_IDS]


def _body(kind: Any, ids: list[str]) -> Any:
    if kind == "labels":
        return {"executionsId": ids, "executionLabels": [{"key": "bulk", "value": "yes"}]}
    return ids


def _call(client: TestClient, method: str, path: str, **kwargs: Any) -> httpx.Response:
    return client.request(method, f"{API}{path}", **kwargs)


def _start(client: TestClient, namespace: str, flow_id: str = "hello") -> str:
    created = client.post(f"{API}/executions/{namespace}/{flow_id}")
    assert created.status_code == 200, created.text
    return str(created.json()["id"])


def _state(client: TestClient, execution_id: str) -> str:
    return str(client.get(f"{API}/executions/{execution_id}").json()["state"]["current"])


def _deploy(client: TestClient, namespace: str, flow_id: str = "hello") -> None:
    assert client.post(f"{API}/flows", content=flow_source(namespace, flow_id), headers=YAML).status_code == 200


def test_no_bulk_path_is_read_as_starting_a_flow_named_by_ids_or_by_query(client: TestClient) -> None:
    """`POST /executions/{namespace}/{flowId}` has the same shape: the literal bulk routes must be matched first."""
    for method, path, kind, query in BY_IDS:
        namespace = path.split("/")[2]
        for flow_id in ("by-ids", "by-query"):
            _deploy(client, namespace, flow_id)
        ids_answer = _call(client, method, path, params=query, json=_body(kind, []))
        labels = [{"key": "bulk", "value": "yes"}] if kind == "labels" else None
        query_answer = _call(client, method, path.replace("by-ids", "by-query"), params=query, json=labels)

        assert (ids_answer.status_code, ids_answer.json()) == (200, {"count": 0}), (path, ids_answer.text)
        assert (query_answer.status_code, query_answer.json()) == (200, {"count": 0}), (path, query_answer.text)
        listed = client.get(f"{API}/executions/search", params={"namespace": namespace}).json()
        assert listed["total"] == 0, path  # no execution of flow `by-ids` / `by-query` was started


@pytest.mark.parametrize(("method", "path", "kind", "query"), BY_IDS, ids=[p for _, p, _, _ in BY_IDS])
def test_unknown_ids_are_a_400_naming_each_and_nothing_is_done(
    client: TestClient, method: str, path: str, kind: Any, query: dict[str, str]
) -> None:
    _deploy(client, "team")
    known = _start(client, "team")
    before = _state(client, known)

    answer = _call(client, method, path, params=query, json=_body(kind, [known, "nope-1", "nope-2"]))

    assert answer.status_code == 400, answer.text
    invalid = {e["invalidValue"]: e["message"] for e in answer.json()["invalids"]}
    assert invalid.get("nope-1") == invalid.get("nope-2") == "execution not found"
    assert answer.json()["message"].startswith("invalid bulk ")
    assert _state(client, known) == before


@pytest.mark.parametrize(("method", "path", "kind", "query"), BY_IDS, ids=[p for _, p, _, _ in BY_IDS])
def test_a_body_that_is_no_id_list_is_a_422_naming_the_body(
    client: TestClient, method: str, path: str, kind: Any, query: dict[str, str]
) -> None:
    answer = _call(client, method, path, params=query, json={"not": "a list"} if kind is None else ["x"])

    assert answer.status_code == 422, answer.text
    assert answer.json()["_embedded"]["errors"][0]["path"].startswith("body")


@pytest.mark.parametrize(("method", "path", "query"), BY_QUERY, ids=[p for _, p, _ in BY_QUERY])
def test_by_query_with_an_unknown_filter_is_a_422_and_matching_nothing_counts_zero(
    client: TestClient, method: str, path: str, query: dict[str, str]
) -> None:
    labels = [{"key": "bulk", "value": "yes"}] if "labels" in path else None
    bad = _call(client, method, path, params={**query, "filters[nope][EQUALS]": "x"}, json=labels)
    assert bad.status_code == 422, bad.text
    assert "filters[nope]" in bad.text

    none = _call(client, method, path, params={**query, "namespace": "no.such.namespace"}, json=labels)
    assert none.status_code == 200, none.text
    assert none.json() == {"count": 0}


SLEEPS = """
id: sleeps
namespace: {ns}
labels:
  team: ai
tasks:
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT1H
"""  # its task run waits for a worker there is none of: the execution stays RUNNING
FAILS = """
id: fails
namespace: {ns}
tasks:
  - id: no
    type: io.kestra.plugin.core.execution.Fail
"""  # run inside the start (a control task): FAILED at once
QUEUED = """
id: queued
namespace: {ns}
concurrency:
  limit: 1
tasks:
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT1H
"""


def _deploy_source(client: TestClient, source: str, namespace: str) -> None:
    answer = client.post(f"{API}/flows", content=source.format(ns=namespace), headers=YAML)
    assert answer.status_code == 200, answer.text


def _actions(client: TestClient, execution_id: str) -> list[str]:
    events = client.get(f"{API}/executions/{execution_id}/audit").json()["events"]
    return [e["action"] for e in events if e["subject"] is None]


def test_kill_pause_resume_by_ids_act_on_each_and_the_engine_audits_each(client: TestClient) -> None:
    _deploy_source(client, SLEEPS, "team.pr")
    ids = [_start(client, "team.pr", "sleeps") for _ in range(2)]
    assert {_state(client, i) for i in ids} == {"RUNNING"}

    assert client.post(f"{API}/executions/pause/by-ids", json=ids).json() == {"count": 2}
    assert {_state(client, i) for i in ids} == {"PAUSED"}
    again = client.post(f"{API}/executions/pause/by-ids", json=ids)
    assert again.status_code == 400
    assert {e["message"] for e in again.json()["invalids"]} == {"execution not in state RUNNING"}

    assert client.post(f"{API}/executions/resume/by-ids", json=ids).json() == {"count": 2}
    assert {_state(client, i) for i in ids} == {"RUNNING"}
    again = client.post(f"{API}/executions/resume/by-ids", json=ids)
    assert {e["message"] for e in again.json()["invalids"]} == {"execution not in state PAUSED"}

    assert client.request("DELETE", f"{API}/executions/kill/by-ids", json=ids).json() == {"count": 2}
    assert {_state(client, i) for i in ids} == {"KILLED"}
    for execution_id in ids:
        assert _actions(client, execution_id)[-4:] == [
            "execution.paused", "execution.running", "execution.killing", "execution.killed",
        ]  # fmt: skip
    again = client.request("DELETE", f"{API}/executions/kill/by-ids", json=ids)
    assert again.status_code == 400
    assert {e["message"] for e in again.json()["invalids"]} == {"execution already finished"}


def test_pause_resume_and_kill_by_query_act_on_what_the_search_finds(client: TestClient) -> None:
    _deploy_source(client, SLEEPS, "team.q1")
    _deploy_source(client, SLEEPS, "team.q2")
    mine = [_start(client, "team.q1", "sleeps") for _ in range(2)]
    other = _start(client, "team.q2", "sleeps")
    query = {"filters[namespace][EQUALS]": "team.q1"}

    assert client.post(f"{API}/executions/pause/by-query", params=query).json() == {"count": 2}
    assert client.post(f"{API}/executions/resume/by-query", params={"namespace": "team.q1"}).json() == {"count": 2}
    assert client.request("DELETE", f"{API}/executions/kill/by-query", params=query).json() == {"count": 2}
    assert {_state(client, i) for i in mine} == {"KILLED"}
    assert _state(client, other) == "RUNNING"
    # By query, the killed ones are found again: Kestra refuses them all (400), it does not skip them.
    assert client.request("DELETE", f"{API}/executions/kill/by-query", params=query).status_code == 400


def test_restart_by_ids_and_by_query_restart_failed_executions_only(client: TestClient) -> None:
    _deploy_source(client, FAILS, "team.rs")
    _deploy_source(client, SLEEPS, "team.rs")
    failed = [_start(client, "team.rs", "fails") for _ in range(2)]
    running = _start(client, "team.rs", "sleeps")
    assert {_state(client, i) for i in failed} == {"FAILED"}

    refused = client.post(f"{API}/executions/restart/by-ids", json=[*failed, running])
    assert refused.status_code == 400
    assert refused.json()["message"] == "invalid bulk restart"
    assert refused.json()["invalids"] == [
        {"path": "execution", "message": "execution not in state FAILED", "invalidValue": running}
    ]

    assert client.post(f"{API}/executions/restart/by-ids", json=failed).json() == {"count": 2}
    for execution_id in failed:
        assert _state(client, execution_id) != "FAILED"  # RESTARTED, its task run waiting for a worker
        assert "execution.restarted" in _actions(client, execution_id)
    failed_since = _start(client, "team.rs", "fails")
    by_query = client.post(
        f"{API}/executions/restart/by-query", params={"namespace": "team.rs", "flowId": "fails", "state": "FAILED"}
    )
    assert by_query.json() == {"count": 1}
    assert "execution.restarted" in _actions(client, failed_since)


def test_unqueue_and_force_run_by_query(client: TestClient) -> None:
    _deploy_source(client, QUEUED, "team.uq")
    first = _start(client, "team.uq", "queued")
    queued = [_start(client, "team.uq", "queued") for _ in range(3)]
    assert _state(client, first) == "RUNNING"
    assert {_state(client, i) for i in queued} == {"QUEUED"}

    query = {"namespace": "team.uq", "state": "QUEUED"}
    assert client.post(f"{API}/executions/unqueue/by-query", params=query).json() == {"count": 3}
    assert {_state(client, i) for i in queued} == {"RUNNING"}
    assert client.post(f"{API}/executions/pause/by-ids", json=queued).json() == {"count": 3}

    forced = client.post(f"{API}/executions/force-run/by-query", params={"namespace": "team.uq", "state": "PAUSED"})
    assert forced.json() == {"count": 3}
    assert {_state(client, i) for i in queued} == {"RUNNING"}  # force-run resumes a paused execution


def test_change_status_by_ids_and_by_query(client: TestClient) -> None:
    _deploy(client, "team.cs")
    _deploy_source(client, SLEEPS, "team.cs")
    ids = [_start(client, "team.cs") for _ in range(2)]
    live = _start(client, "team.cs", "sleeps")

    by_ids = client.post(f"{API}/executions/change-status/by-ids", params={"newStatus": "WARNING"}, json=ids)
    assert by_ids.status_code == 200, by_ids.text
    assert by_ids.json() == {"count": 2}
    assert {_state(client, i) for i in ids} == {"WARNING"}
    assert "execution.state_changed" in _actions(client, ids[0])

    refused = client.post(f"{API}/executions/change-status/by-ids", params={"newStatus": "FAILED"}, json=[live])
    assert refused.status_code == 400
    assert refused.json()["invalids"][0]["message"] == "execution not in a terminated state"

    by_query = client.post(
        f"{API}/executions/change-status/by-query",
        params={"namespace": "team.cs", "flowId": "hello", "newStatus": "FAILED"},
    )
    assert by_query.json() == {"count": 2}
    assert {_state(client, i) for i in ids} == {"FAILED"}


@pytest.mark.parametrize(
    ("status", "path"), [("RUNNING", "newStatus"), ("NOPE", "query.newStatus"), (None, "query.newStatus")]
)
def test_change_status_to_an_unknown_or_live_status_is_a_422_naming_it(
    client: TestClient, status: str | None, path: str
) -> None:
    params = {} if status is None else {"newStatus": status}
    for form in ("by-ids", "by-query"):
        answer = client.post(f"{API}/executions/change-status/{form}", params=params, json=[])

        assert answer.status_code == 422, answer.text
        assert answer.json()["_embedded"]["errors"][0]["path"] == path


def test_labels_by_ids_and_by_query_on_ended_executions(client: TestClient) -> None:
    _deploy(client, "team.lb")
    _deploy_source(client, SLEEPS, "team.lb")
    ids = [_start(client, "team.lb") for _ in range(2)]
    live = _start(client, "team.lb", "sleeps")

    body = {"executionsId": ids, "executionLabels": [{"key": "bulk", "value": "one"}]}
    assert client.post(f"{API}/executions/labels/by-ids", json=body).json() == {"count": 2}
    by_query = client.post(
        f"{API}/executions/labels/by-query",
        params={"namespace": "team.lb", "flowId": "hello"},
        json=[{"key": "more", "value": "two"}],
    )
    assert by_query.json() == {"count": 2}
    for execution_id in ids:
        labels = {x["key"]: x["value"] for x in client.get(f"{API}/executions/{execution_id}").json()["labels"]}
        assert labels["bulk"] == "one" and labels["more"] == "two" and labels["team"] == "ai"
        assert "execution.labels" in _actions(client, execution_id)

    refused = client.post(f"{API}/executions/labels/by-ids", json={**body, "executionsId": [live]})
    assert refused.status_code == 400
    assert refused.json()["invalids"][0]["message"] == "execution is not terminated"
    reserved = {"executionsId": ids, "executionLabels": [{"key": "system.readOnly", "value": "true"}]}
    refused = client.post(f"{API}/executions/labels/by-ids", json=reserved)
    assert refused.status_code == 422 and "system.readOnly" in refused.text
    refused = client.post(f"{API}/executions/labels/by-query", json=[{"key": "system.x", "value": "y"}])
    assert refused.status_code == 422


def test_replay_by_ids_starts_one_new_execution_each_and_on_the_latest_revision_when_asked(
    client: TestClient,
) -> None:
    _deploy(client, "team.rp")
    original = _start(client, "team.rp")
    changed = client.put(
        f"{API}/flows/team.rp/hello", content=flow_source("team.rp").replace("Hello", "Hi"), headers=YAML
    )
    assert changed.status_code == 200 and changed.json()["revision"] == 2

    assert client.post(f"{API}/executions/replay/by-ids", json=[original]).json() == {"count": 1}
    answer = client.post(f"{API}/executions/replay/by-ids", params={"latestRevision": "true"}, json=[original])
    assert answer.json() == {"count": 1}

    listed = client.get(f"{API}/executions/search", params={"namespace": "team.rp", "size": 10}).json()["results"]
    replays = [e for e in listed if e["id"] != original]
    assert sorted(e["flowRevision"] for e in replays) == [1, 2]
    assert _actions(client, original).count("execution.replayed") == 2

    by_query = client.post(f"{API}/executions/replay/by-query", params={"namespace": "team.rp"})
    assert by_query.json() == {"count": 3}
