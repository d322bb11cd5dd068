"""One request must not stall the API: catastrophic regex in validators and search filters, jq in a webhook key.

Each request below took the in-process API for seconds to minutes on the main of issue 16 (Python's `re`
backtracking, jq's C loop holding the thread); now each answers within its bound with a 4xx or a 404.
"""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

pytestmark = pytest.mark.security

API = "/api/v1/main"
YAML = {"Content-Type": "application/x-yaml"}

VALIDATED = """id: validated
namespace: security.redos
inputs:
  - id: name
    type: STRING
    validator: "{validator}"
tasks:
  - id: t
    type: io.kestra.plugin.core.log.Log
    message: "{{ inputs.name }}"
"""

JQ_KEY = """id: hooked
namespace: security.stall
triggers:
  - id: hook
    type: io.kestra.plugin.core.trigger.Webhook
    key: "{{ {} | jq('last(range(15000000))') | first }}"
tasks:
  - id: t
    type: io.kestra.plugin.core.log.Log
    message: hi
"""

#: (pattern, text) pairs that backtrack exponentially in Python's `re`.
CATASTROPHIC = [("(a|a)*", "a" * 28 + "!"), ("(a+)+", "a" * 40 + "!"), ("(x+x+)+y", "x" * 40)]


@pytest.mark.parametrize(("pattern", "text"), CATASTROPHIC)
def test_a_catastrophic_input_validator_answers_at_once(client: TestClient, pattern: str, text: str) -> None:
    deployed = client.post(f"{API}/flows", content=VALIDATED.replace("{validator}", pattern), headers=YAML)
    assert deployed.status_code == 200, deployed.text

    # Warm the path first (the flow's parse, the app's first request), so the bound measures the match alone.
    client.post(f"{API}/executions/security.redos/validated", files={"name": (None, "!")})
    started = time.monotonic()
    response = client.post(f"{API}/executions/security.redos/validated", files={"name": (None, text)})

    # Python's `re` needs minutes to hours on these (2^28 and more steps); RE2 is linear. A 3 s bound tells the
    # two apart on a loaded 2-core machine, where the whole request once took just over 1 s.
    assert time.monotonic() - started < 3.0
    assert response.status_code == 422, response.text
    assert "must match the pattern" in response.text


def test_a_validator_re2_cannot_run_is_refused_at_deploy_on_its_line(client: TestClient) -> None:
    response = client.post(f"{API}/flows", content=VALIDATED.replace("{validator}", "(a)\\\\1"), headers=YAML)

    assert response.status_code == 422, response.text
    errors = response.json()["_embedded"]["errors"]
    assert [e["path"] for e in errors] == ["inputs[0].validator"]
    assert "no backreferences" in errors[0]["message"]


@pytest.mark.parametrize("pattern", ["(", "(a)\\1", "(?=a)", "a{1,100}{1,100}"])
def test_a_regex_search_filter_re2_cannot_run_is_a_4xx(client: TestClient, pattern: str) -> None:
    response = client.get(f"{API}/executions/search", params={"filters[namespace][REGEX]": pattern})

    assert 400 <= response.status_code < 500, response.text
    assert "regular expression" in response.text


def test_a_catastrophic_regex_search_filter_answers_at_once(client: TestClient) -> None:
    started = time.monotonic()
    response = client.get(f"{API}/executions/search", params={"filters[namespace][REGEX]": "^(a|a)*$"})

    assert response.status_code == 200, response.text
    assert time.monotonic() - started < 2.0


def test_a_jq_loop_in_a_webhook_key_stops_at_the_render_deadline(client: TestClient) -> None:
    assert client.post(f"{API}/flows", content=JQ_KEY, headers=YAML).status_code == 200

    started = time.monotonic()
    response = client.post(f"{API}/executions/webhook/security.stall/hooked/anything", json={})

    assert time.monotonic() - started < 4.0  # the 2 s render deadline, plus starting a jq helper
    assert response.status_code == 404, response.text  # as a wrong key: the template is not shown
    assert "jq" not in response.text
    assert client.get("/health").status_code == 200
