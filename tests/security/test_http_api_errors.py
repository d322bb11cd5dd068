"""Requests that used to be 500s: each is now a 4xx naming the field at fault, and none answers an oracle.

Issue 16 ("500s"): an invalid regex filter, a CONTAINS label filter, huge durations in `timeRange` and in a
token's `expiresIn`, and a webhook key with non-ASCII characters (which also told a real webhook, 500, from
an unknown one, 404).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from fastapi.testclient import TestClient

from tests.integration.api.conftest import ADMIN, flow_source

pytestmark = pytest.mark.security

API = "/api/v1/main"
YAML = {"Content-Type": "application/x-yaml"}

WEBHOOK = """
id: hook
namespace: security.hooks
triggers:
  - id: hook
    type: io.kestra.plugin.core.trigger.Webhook
    key: s3cret-key
tasks:
  - id: say
    type: io.kestra.plugin.core.log.Log
    message: hi
"""


def _fields(response: object) -> list[str]:
    return [e["path"] for e in response.json()["_embedded"]["errors"]]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("path", "param"),
    [
        ("/executions/search", "filters[namespace][REGEX]"),
        ("/flows/search", "filters[namespace][REGEX]"),
        ("/logs/search", "filters[namespace][REGEX]"),
    ],
)
def test_an_invalid_regex_filter_is_422_naming_the_filter(client: TestClient, path: str, param: str) -> None:
    response = client.get(API + path, params={param: "("})

    assert response.status_code == 422, response.text
    assert _fields(response) == [param.removesuffix("[REGEX]")]
    assert "regular expression" in response.json()["message"]


def test_a_valid_regex_filter_still_matches(client: TestClient) -> None:
    client.post(f"{API}/flows", content=flow_source("security.rx"), headers=YAML)
    client.post(f"{API}/executions/security.rx/hello")

    response = client.get(f"{API}/executions/search", params={"filters[namespace][REGEX]": "^security\\.r."})

    assert response.status_code == 200 and response.json()["total"] == 1


def test_a_contains_label_filter_matches_keys_instead_of_failing(client: TestClient) -> None:
    client.post(f"{API}/flows", content=flow_source("security.lbl"), headers=YAML)
    run = client.post(f"{API}/executions/security.lbl/hello", params={"labels": ["owner:ann"]}).json()["id"]

    hit = client.get(f"{API}/executions/search", params={"filters[labels][CONTAINS][owner]": "an"})
    miss = client.get(f"{API}/executions/search", params={"filters[labels][CONTAINS][nobody]": "x"})
    quoted = client.get(f"{API}/executions/search", params={'filters[labels][CONTAINS][x" || @.key != "x]': ""})

    assert hit.status_code == 200, hit.text
    assert [r["id"] for r in hit.json()["results"]] == [run]
    assert miss.status_code == 200 and miss.json()["total"] == 0
    assert quoted.status_code == 200 and quoted.json()["total"] == 0  # the key is data, never jsonpath


@pytest.mark.parametrize("span", ["P99999999999D", "P999999999D", "PT99999999999999999999H"])
@pytest.mark.parametrize("param", ["filters[timeRange][EQUALS]", "timeRange"])
def test_a_time_range_beyond_the_calendar_is_422_naming_it(client: TestClient, span: str, param: str) -> None:
    response = client.get(f"{API}/executions/search", params={param: span})

    assert response.status_code == 422, response.text
    assert _fields(response) in (["filters[timeRange]"], ["timeRange"])


@pytest.mark.parametrize("span", ["P99999999999D", "P999999999D", "P36600D"])
def test_a_token_lifetime_beyond_the_limit_is_422_naming_expires_in(auth_client: TestClient, span: str) -> None:
    response = auth_client.post(f"{API}/tokens", json={"name": "forever", "expiresIn": span}, auth=ADMIN)

    assert response.status_code == 422, response.text
    assert _fields(response) == ["expiresIn"]


@pytest.mark.parametrize("key", ["s3cret-kéy", "ключ", "🔑", "s3cret-key\u00a0"])
def test_a_non_ascii_webhook_key_is_the_same_404_as_an_unknown_flow(client: TestClient, key: str) -> None:
    assert client.post(f"{API}/flows", content=WEBHOOK, headers=YAML).status_code == 200

    real = client.post(f"{API}/executions/webhook/security.hooks/hook/{key}")
    unknown = client.post(f"{API}/executions/webhook/security.hooks/nothing-here/{key}")

    assert real.status_code == unknown.status_code == 404, real.text
    assert real.json()["_embedded"]["errors"][0]["path"] == unknown.json()["_embedded"]["errors"][0]["path"]


@pytest.mark.parametrize("span", ["P99999999999D", "P999999999D"])
def test_the_cli_refuses_a_token_lifetime_beyond_the_limit_naming_the_flag(database_url: str, span: str) -> None:
    env = {**os.environ, "CHORUS_DATABASE_URL": database_url}
    chorus = [sys.executable, "-m", "orchestrator.cli"]
    user = [*chorus, "user", "create", "ann", "--role", "viewer", "--password-stdin"]
    assert subprocess.run(user, input=ADMIN[1], capture_output=True, text=True, env=env).returncode == 0
    args = ["token", "create", "--user", "ann", "--name", "forever", "--expires-in", span]

    done = subprocess.run([*chorus, *args], capture_output=True, text=True, env=env)

    assert done.returncode == 2, done.stderr
    assert "--expires-in" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("deep", ["[" * 200_000 + "]" * 200_000, '{"a":' * 100_000 + "1" + "}" * 100_000])
def test_a_webhook_body_nested_too_deeply_is_a_422_naming_the_body(client: TestClient, deep: str) -> None:
    # The caller has no account; json.loads' RecursionError used to be a 500.
    assert client.post(f"{API}/flows", content=WEBHOOK, headers=YAML).status_code == 200

    response = client.post(
        f"{API}/executions/webhook/security.hooks/hook/s3cret-key",
        content=deep,
        headers={"Content-Type": "application/json"},
    )

    assert response.status_code == 422, response.text
    assert _fields(response) == ["body"]
    assert "nested too deeply" in response.json()["message"]


def test_an_a2a_call_nested_too_deeply_is_a_json_rpc_parse_error(client: TestClient) -> None:
    response = client.post("/a2a", content="[" * 200_000 + "]" * 200_000, headers={"Content-Type": "application/json"})

    assert response.status_code < 500, response.text
    assert response.json()["error"]["code"] == -32700
