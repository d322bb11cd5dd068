"""Limits and oracles of the HTTP API: labels per execution, log line size, `/flows/validate`, and the follow
stream, which answered unknown ids after 10 s but invisible ones at once (telling them apart)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi.testclient import TestClient

from orchestrator.engine.values import LogRecord, log_row
from tests.e2e.conftest import Stack
from tests.integration.api.conftest import ADMIN, AppFactory, flow_source

pytestmark = pytest.mark.security

API = "/api/v1/main"
YAML = {"Content-Type": "application/x-yaml"}
DEV = ("dev@team.test", "dev-password-1")
NOBODY = ("nobody@team.test", "nobody-password-1")


def _fields(response: Any) -> list[str]:
    return [e["path"] for e in response.json()["_embedded"]["errors"]]


def _users(client: TestClient) -> None:
    for (username, password), roles in ((DEV, [{"role": "developer", "namespace": "team"}]), (NOBODY, [])):
        body = {"username": username, "password": password, "roles": roles}
        assert client.post(f"{API}/users", json=body, auth=ADMIN).status_code == 200


def test_following_an_invisible_execution_looks_like_following_an_unknown_one(make_client: AppFactory) -> None:
    client = make_client(admin_username=ADMIN[0], admin_password=ADMIN[1])
    _users(client)
    client.post(f"{API}/flows", content=flow_source("secret.ns"), headers=YAML, auth=ADMIN)
    hidden = client.post(f"{API}/executions/secret.ns/hello", auth=ADMIN).json()["id"]

    answers = []
    for execution_id in (hidden, "0" * 22):
        started = time.monotonic()
        response = client.get(f"{API}/executions/{execution_id}/follow", auth=DEV)
        answers.append((response.status_code, _fields(response), time.monotonic() - started))

    assert [a[:2] for a in answers] == [(404, ["execution"]), (404, ["execution"])]
    assert all(elapsed < 2 for *_, elapsed in answers), answers


def test_validate_needs_a_flow_role_when_auth_is_on(make_client: AppFactory) -> None:
    client = make_client(admin_username=ADMIN[0], admin_password=ADMIN[1])
    _users(client)
    source = flow_source("team")

    anonymous = client.post(f"{API}/flows/validate", content=source, headers=YAML)
    without_role = client.post(f"{API}/flows/validate", content=source, headers=YAML, auth=NOBODY)
    developer = client.post(f"{API}/flows/validate", content=source, headers=YAML, auth=DEV)

    assert anonymous.status_code == 401
    assert without_role.status_code == 403, without_role.text
    assert developer.status_code == 200 and developer.json()[0]["constraints"] is None


def test_validate_has_the_same_body_cap_as_deploy(make_client: AppFactory) -> None:
    client = make_client(max_body_bytes=4096)
    big = flow_source("team") + "#" * 5000

    for path in (f"{API}/flows/validate", f"{API}/flows"):
        response = client.post(path, content=big, headers=YAML)
        assert response.status_code == 413 and _fields(response) == ["body"], path


def test_too_many_labels_on_a_new_execution_is_422_naming_labels(client: TestClient) -> None:
    client.post(f"{API}/flows", content=flow_source("team"), headers=YAML)

    response = client.post(f"{API}/executions/team/hello", params={"labels": [f"k{n}:v" for n in range(101)]})

    assert response.status_code == 422, response.text
    assert _fields(response) == ["labels"]
    assert "CHORUS_MAX_LABELS" in response.json()["message"]


@pytest.mark.parametrize(
    ("label", "field"), [({"key": "k" * 257, "value": "v"}, "key"), ({"key": "big", "value": "v" * 4097}, "value")]
)
def test_an_oversized_label_is_422_naming_it_on_create_and_on_set(
    client: TestClient, label: dict[str, str], field: str
) -> None:
    client.post(f"{API}/flows", content=flow_source("team"), headers=YAML)
    created = client.post(f"{API}/executions/team/hello", params={"labels": f"{label['key']}:{label['value']}"})
    run = client.post(f"{API}/executions/team/hello").json()["id"]
    set_later = client.post(f"{API}/executions/{run}/labels", json=[label])

    for response in (created, set_later):
        assert response.status_code == 422, response.text
        assert _fields(response)[0].startswith("labels[") and _fields(response)[0].endswith(f"].{field}")
    kept = client.get(f"{API}/executions/{run}").json()["labels"]
    assert {lbl["key"] for lbl in kept} == {"team", "system.correlationId"}


def test_the_labels_limit_is_a_setting(make_client: AppFactory) -> None:
    client = make_client(max_labels=3)
    client.post(f"{API}/flows", content=flow_source("team"), headers=YAML)  # team:ai, and the correlation id

    assert client.post(f"{API}/executions/team/hello", params={"labels": ["a:1"]}).status_code == 200
    assert client.post(f"{API}/executions/team/hello", params={"labels": ["a:1", "b:2"]}).status_code == 422


def test_a_log_line_over_the_cap_is_truncated_with_a_marker() -> None:
    execution: Any = SimpleNamespace(id="e", namespace="ns", flow_id="f")
    at = datetime.now(UTC)

    long = log_row(execution, None, LogRecord("INFO", "x" * 1000, at), 300)["message"]
    short = log_row(execution, None, LogRecord("INFO", "x" * 300, at), 300)["message"]

    assert long.startswith("x" * 300) and long.endswith("[truncated 700 characters]")
    assert not long.startswith("x" * 301)
    assert short == "x" * 300


SLA_WITH_HUGE_LABEL = """
id: sla-huge-label
namespace: {ns}
sla:
  - id: quick
    type: MAX_DURATION
    behavior: FAIL
    duration: PT1S
    labels:
      sla: "%s"
tasks:
  - id: slow
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT4S
""" % ("x" * 5000)


def test_an_sla_whose_labels_exceed_the_limits_is_still_enforced(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(SLA_WITH_HUGE_LABEL)

    done = stack.wait_for_state(stack.run(unique_namespace, "sla-huge-label")["id"])

    assert done["state"]["current"] == "FAILED"
    assert all(label["key"] != "sla" for label in done["labels"])
