"""Paths by which an untrusted party used to get its text run or its labels forged, on the running stack.

- A webhook caller with no account posting `{{ kv('k') }}` to a flow whose TemplatedTask spec prints the body:
  Kestra renders the spec and then the task's properties, so the caller's text was evaluated with the flow's
  rights (its KV, its secrets). It is now printed as posted.
- A flow giving a Subflow `system.*` labels: the child carried a forged `system.correlationId` or
  `system.username`, which the Labels task and the API refuse.
"""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.conftest import Stack

pytestmark = pytest.mark.security

TEMPLATED = """
id: templated
namespace: {ns}
tasks:
  - id: echo
    type: io.kestra.plugin.core.templating.TemplatedTask
    spec: |
      type: io.kestra.plugin.core.debug.Return
      format: "{{{{ trigger.body.text }}}}"
triggers:
  - id: hook
    type: io.kestra.plugin.core.trigger.Webhook
    key: templated-hook-key
"""


def test_a_webhook_callers_text_in_a_templated_spec_is_never_evaluated(stack: Stack, unique_namespace: str) -> None:
    stack.deploy(TEMPLATED.format(ns=unique_namespace))
    assert stack.api.put(f"/namespaces/{unique_namespace}/kv/k", content='"kv-private"').status_code in (200, 204)
    posted = "{{ kv('k') }} {{ flow.namespace }}"

    base = str(stack.api.base_url).rstrip("/")
    started = httpx.post(
        f"{base}/executions/webhook/{unique_namespace}/templated/templated-hook-key", json={"text": posted}
    )
    assert started.status_code == 200, started.text
    ended = stack.wait_for_state(started.json()["id"])

    assert ended["state"]["current"] == "SUCCESS"
    assert ended["taskRunList"][0]["outputs"] == {"value": posted}
    assert "kv-private" not in str(ended)


CHILD = """
id: child
namespace: {ns}
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: hello
"""

PARENT = """
id: parent
namespace: {ns}
tasks:
  - id: call
    type: io.kestra.plugin.core.flow.Subflow
    namespace: {ns}
    flowId: child
    labels:
      team: "{labels_team}"
{extra}
"""


def test_a_subflow_cannot_give_its_child_system_labels(stack: Stack, unique_namespace: str) -> None:
    stack.deploy(CHILD.format(ns=unique_namespace))
    forged = '      system.username: admin\n      system.correlationId: "forged"'
    stack.deploy(PARENT.format(ns=unique_namespace, labels_team="a", extra=forged))

    ended = stack.wait_for_state(stack.run(unique_namespace, "parent")["id"])

    assert ended["state"]["current"] == "FAILED"
    logs = "\n".join(line["message"] for line in stack.api.get(f"/logs/{ended['id']}").json())
    assert "are reserved for the system" in logs
    children = stack.api.get("/executions/search", params={"namespace": unique_namespace, "flowId": "child"}).json()
    assert children["total"] == 0


def test_a_subflow_still_passes_ordinary_labels_and_the_correlation_id(stack: Stack, unique_namespace: str) -> None:
    stack.deploy(CHILD.format(ns=unique_namespace))
    stack.deploy(PARENT.format(ns=unique_namespace, labels_team="a", extra=""))

    ended = stack.wait_for_state(stack.run(unique_namespace, "parent")["id"])

    assert ended["state"]["current"] == "SUCCESS"
    child_id = ended["taskRunList"][0]["outputs"]["executionId"]
    labels = {label["key"]: label["value"] for label in stack.api.get(f"/executions/{child_id}").json()["labels"]}
    parent_labels = {label["key"]: label["value"] for label in ended["labels"]}
    assert labels["team"] == "a"
    assert labels["system.correlationId"] == parent_labels["system.correlationId"]
