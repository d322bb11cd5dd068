"""Cross-namespace corpus on the running stack: a flow of namespace A naming namespace B (rendered at run time,
so the deploy cannot see it) fails with a clear error and learns nothing; the same action within A works.

The stack grants nothing (`CHORUS_NAMESPACE_ACCESS` unset): each namespace may use only itself.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.e2e.conftest import Stack
from tests.fakes import jira as jira_fake

pytestmark = pytest.mark.security

CHILD = """
id: child
namespace: {ns}
tasks:
  - id: answer
    type: io.kestra.plugin.core.debug.Return
    format: "private to {ns}"
outputs:
  - id: answer
    type: STRING
    value: "{{{{ outputs.answer.value }}}}"
"""

PAUSED = """
id: paused
namespace: {ns}
tasks:
  - id: approval
    type: io.kestra.plugin.core.flow.Pause
  - id: after
    type: io.kestra.plugin.core.log.Log
    message: approved
triggers:
  - id: nightly
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "0 3 * * *"
"""

PROBE = """
id: probe-{name}
namespace: {ns}
inputs:
  - id: target
    type: STRING
  - id: ref
    type: STRING
    defaults: none
tasks:
  - id: probe
{task}
"""

#: (name, task YAML over `inputs.target` / `inputs.ref`, what `ref` is, the error when target is another namespace)
_AT = '    namespace: "{{ inputs.target }}"\n'
CORPUS = [
    ("kv-function", "    type: io.kestra.plugin.core.debug.Return\n    format: \"{{ kv('k', inputs.target) }}\"",
     None, "may not use namespace"),
    ("kv-get", "    type: io.kestra.plugin.core.kv.Get\n    namespace: \"{{ inputs.target }}\"\n    key: k",
     None, "may not use namespace"),
    ("kv-set", "    type: io.kestra.plugin.core.kv.Set\n" + _AT + "    key: k2\n    value: x",
     None, "may not use namespace"),
    ("kv-delete", "    type: io.kestra.plugin.core.kv.Delete\n" + _AT + "    key: k",
     None, "may not use namespace"),
    ("subflow", "    type: io.kestra.plugin.core.flow.Subflow\n" + _AT + "    flowId: child",
     None, "may not use namespace"),
    ("toggle", "    type: io.kestra.plugin.core.trigger.Toggle\n    namespace: \"{{ inputs.target }}\"\n"
     "    flowId: paused\n    trigger: nightly", None, "may not use namespace"),
    ("fetch", "    type: io.kestra.plugin.core.log.Fetch\n    executionId: \"{{ inputs.ref }}\"",
     "execution", "not found in the namespaces"),
    ("resume", "    type: io.kestra.plugin.core.execution.Resume\n    executionId: \"{{ inputs.ref }}\"",
     "paused", "not found in the namespaces"),
]  # fmt: skip


@pytest.fixture
def namespaces(stack: Stack, unique_namespace: str) -> tuple[str, str]:
    """Namespaces A (the prober) and B (the target), each with a child flow, a paused flow and a KV key."""
    own, other = f"{unique_namespace}.a", f"{unique_namespace}.b"
    for namespace in (own, other):
        stack.deploy(CHILD.format(ns=namespace))
        stack.deploy(PAUSED.format(ns=namespace))
        response = stack.api.put(f"/namespaces/{namespace}/kv/k", content=f'"kv of {namespace}"')
        assert response.status_code in (200, 204), response.text
    return own, other


def _paused(stack: Stack, namespace: str) -> str:
    execution = stack.run(namespace, "paused")
    return stack.wait_for_state(execution["id"], {"PAUSED"})["id"]


def _logs(stack: Stack, execution_id: str) -> str:
    return "\n".join(line["message"] for line in stack.api.get(f"/logs/{execution_id}").json())


def _probe(stack: Stack, own: str, target: str, name: str, task: str, ref: str | None) -> dict[str, Any]:
    stack.deploy(PROBE.format(name=name, ns=own, task=task))
    reference = ""
    if ref == "execution":
        reference = stack.wait_for_state(stack.run(target, "child")["id"])["id"]
    elif ref == "paused":
        reference = _paused(stack, target)
    execution = stack.run(own, f"probe-{name}", target=target, ref=reference)
    return stack.wait_for_state(execution["id"]) | {"ref": reference}


@pytest.mark.parametrize(("name", "task", "ref", "error"), CORPUS, ids=[c[0] for c in CORPUS])
def test_a_cross_namespace_reference_fails_with_a_clear_error(
    stack: Stack, namespaces: tuple[str, str], name: str, task: str, ref: str | None, error: str
) -> None:
    own, other = namespaces
    ended = _probe(stack, own, other, name, task, ref)

    assert ended["state"]["current"] == "FAILED"
    logs = _logs(stack, ended["id"])
    assert error in logs
    assert f"private to {other}" not in str(ended) and f"kv of {other}" not in str(ended)
    kv = stack.api.get(f"/namespaces/{other}/kv/k")
    assert kv.status_code == 200  # not deleted
    assert stack.api.get(f"/namespaces/{other}/kv/k2").status_code == 404  # not written
    if ref == "paused":
        assert stack.api.get(f"/executions/{ended['ref']}").json()["state"]["current"] == "PAUSED"


@pytest.mark.parametrize(("name", "task", "ref", "error"), CORPUS, ids=[c[0] for c in CORPUS])
def test_the_same_action_within_the_namespace_works(
    stack: Stack, namespaces: tuple[str, str], name: str, task: str, ref: str | None, error: str
) -> None:
    own, _ = namespaces
    ended = _probe(stack, own, own, name, task, ref)

    assert ended["state"]["current"] == "SUCCESS", _logs(stack, ended["id"])
    if name == "subflow":
        assert ended["taskRunList"][0]["outputs"]["outputs"]["answer"] == f"private to {own}"


def test_a_literal_reference_to_another_namespace_deploys_with_a_warning_and_fails_when_it_would_cross(
    stack: Stack, namespaces: tuple[str, str]
) -> None:
    # As in Kestra (EE's allowedNamespaces is checked when the act happens): the flow deploys, validate warns with
    # the line, and the Subflow fails at run time without starting anything in the other namespace.
    own, other = namespaces
    source = PROBE.format(
        name="literal",
        ns=own,
        task=f"    type: io.kestra.plugin.core.flow.Subflow\n    namespace: {other}\n    flowId: child",
    )
    yaml = {"Content-Type": "application/x-yaml"}
    [verdict] = stack.api.post("/flows/validate", content=source, headers=yaml).json()
    assert any(f"may not use namespace '{other}'" in w and "line 11" in w for w in verdict["warnings"]), verdict
    assert stack.api.post("/flows", content=source, headers=yaml).status_code == 200

    before = stack.api.get("/executions", params={"namespace": other, "flowId": "child"}).json()["total"]
    ended = stack.wait_for_state(stack.run(own, "probe-literal", target=other, ref="")["id"])

    assert ended["state"]["current"] == "FAILED"
    assert f"may not use namespace '{other}'" in _logs(stack, ended["id"])
    assert stack.api.get("/executions", params={"namespace": other, "flowId": "child"}).json()["total"] == before


LISTENER = """
id: listener
namespace: {ns}
tasks:
  - id: seen
    type: io.kestra.plugin.core.debug.Return
    format: "{{{{ trigger.namespace }}}} {{{{ trigger.outputs }}}}"
triggers:
  - id: every-run-under-a-prefix
    type: io.kestra.plugin.core.trigger.Flow
    conditions:
      - type: io.kestra.plugin.core.condition.ExecutionNamespace
        namespace: {prefix}
        comparison: PREFIX
"""


def test_a_flow_trigger_never_sees_executions_of_a_namespace_it_may_not_read(
    stack: Stack, namespaces: tuple[str, str], unique_namespace: str
) -> None:
    own, other = namespaces
    stack.deploy(LISTENER.format(ns=own, prefix=unique_namespace))
    stack.wait_for_state(stack.run(other, "child")["id"])
    stack.wait_for_state(stack.run(own, "child")["id"])

    deadline = time.monotonic() + 20
    results: list[dict[str, Any]] = []
    while time.monotonic() < deadline and not results:
        results = stack.api.get("/executions/search", params={"namespace": own, "flowId": "listener"}).json()["results"]
        time.sleep(0.2)
    time.sleep(1.0)  # time for a wrong second start to show up
    results = stack.api.get("/executions/search", params={"namespace": own, "flowId": "listener"}).json()["results"]
    assert [r["trigger"]["variables"]["namespace"] for r in results] == [own]


RECURSIVE = """
id: recursive
namespace: {ns}
tasks:
  - id: again
    type: io.kestra.plugin.core.flow.Subflow
    namespace: "{{{{ flow.namespace }}}}"
    flowId: "{{{{ flow.id }}}}"
"""


def test_a_subflow_calling_its_own_flow_stops_at_the_depth_limit(stack: Stack, unique_namespace: str) -> None:
    stack.deploy(RECURSIVE.format(ns=unique_namespace))
    root = stack.wait_for_state(stack.run(unique_namespace, "recursive")["id"], timeout_s=60)

    assert root["state"]["current"] == "FAILED"
    found = stack.api.get("/executions/search", params={"namespace": unique_namespace, "size": 100}).json()
    assert found["total"] == 11  # the root and ten nested subflows (CHORUS_MAX_SUBFLOW_DEPTH=10)
    deepest = max(found["results"], key=lambda e: (e.get("trigger") or {}).get("subflowDepth", 0))
    assert "past the limit of 10 (CHORUS_MAX_SUBFLOW_DEPTH)" in _logs(stack, deepest["id"])


LABEL_LEAK = """
id: label-leak
namespace: {ns}
tasks:
  - id: label
    type: io.kestra.plugin.core.execution.Labels
    labels:
      token: "{{{{ secret('JIRA_API_TOKEN') | reverse }}}}"
"""


def test_a_secret_derived_label_is_refused_and_never_reaches_the_audit_trail(
    stack: Stack, unique_namespace: str
) -> None:
    stack.deploy(LABEL_LEAK.format(ns=unique_namespace))
    ended = stack.wait_for_state(stack.run(unique_namespace, "label-leak")["id"])

    assert ended["state"]["current"] == "FAILED"
    assert "a value computed from secret() cannot be stored" in _logs(stack, ended["id"])
    audit = stack.api.get(f"/executions/{ended['id']}/audit").text
    for leaked in (jira_fake.API_TOKEN, jira_fake.API_TOKEN[::-1]):
        assert leaked not in audit and leaked not in str(ended)
