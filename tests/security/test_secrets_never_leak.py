"""A secret used everywhere a flow can put it never appears in clear: not in the API's executions, logs or
audit trail, not in what Redis holds (Celery messages, results, chord state), not in Flower."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pytest
import redis

from tests.e2e.conftest import Stack
from tests.fakes import jira as jira_fake
from tests.harness.flower import Flower

pytestmark = pytest.mark.security

SECRET = jira_fake.API_TOKEN  # the stack's SECRET_JIRA_API_TOKEN
SECRET_INPUT = "input-password-7f3a9c"

EVERYWHERE = """
id: leak-attempts
namespace: {ns}
inputs:
  - id: password
    type: SECRET
tasks:
  - id: log
    type: io.kestra.plugin.core.log.Log
    message: "token {{ secret('JIRA_API_TOKEN') }} and password {{ inputs.password }}"
  - id: returned
    type: io.kestra.plugin.core.debug.Return
    format: "{{ secret('JIRA_API_TOKEN') }}"
  - id: values
    type: io.kestra.plugin.core.output.OutputValues
    values:
      token: "{{ secret('JIRA_API_TOKEN') }}"
      password: "{{ inputs.password }}"
  - id: shell
    type: io.kestra.plugin.scripts.shell.Commands
    env:
      TOKEN: "{{ secret('JIRA_API_TOKEN') }}"
    commands:
      - |
        echo "the token is $TOKEN"
        printf '::{"outputs": {"echoed": "%s"}}::\\n' "$TOKEN"
  - id: fail
    type: io.kestra.plugin.core.execution.Fail
    errorMessage: "failing with {{ secret('JIRA_API_TOKEN') }}"
"""


def _forms(value: str) -> list[str]:
    return [value, base64.b64encode(value.encode()).decode()]


def _leaks(text: str) -> list[str]:
    return [form for value in (SECRET, SECRET_INPUT) for form in _forms(value) if form in text]


def _redis_dump(url: str) -> str:
    client = redis.Redis.from_url(url)
    parts = []
    try:
        for key in client.scan_iter(count=1000):
            kind = client.type(key).decode()
            if kind == "string":
                parts.append(repr(client.get(key)))
            elif kind == "list":
                parts.append(repr(client.lrange(key, 0, -1)))
            elif kind == "hash":
                parts.append(repr(client.hgetall(key)))
            elif kind == "set":
                parts.append(repr(client.smembers(key)))
            elif kind == "zset":
                parts.append(repr(client.zrange(key, 0, -1)))
    finally:
        client.close()
    return "\n".join(parts)


def test_a_secret_used_in_every_position_never_appears_in_clear(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str, flower: Flower
) -> None:
    deploy_flow(EVERYWHERE)
    execution_id = stack.run(unique_namespace, "leak-attempts", password=SECRET_INPUT)["id"]
    done = stack.wait_for_state(execution_id, timeout_s=60)
    assert done["state"]["current"] == "FAILED"  # the Fail task ran: every position was rendered

    logs = stack.api.get(f"/logs/{execution_id}").text
    places = {
        "execution": stack.api.get(f"/executions/{execution_id}").text,
        "logs": logs,
        "log download": stack.api.get(f"/logs/{execution_id}/download").text,
        "audit": stack.api.get(f"/executions/{execution_id}/audit").text,
        "redis": _redis_dump(stack.settings.broker_url),
        "flower": flower.client.get("/api/tasks", params={"search": execution_id}).text,
    }

    assert "the token is" in logs and "token" in logs  # the positions were used, masked
    assert {place: _leaks(text) for place, text in places.items()} == {place: [] for place in places}
