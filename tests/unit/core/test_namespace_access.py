"""The namespace policy: a namespace uses itself, anything else only by a grant of the namespace being used."""

from __future__ import annotations

import pytest

from orchestrator.core.errors import FlowInvalid
from orchestrator.core.namespace_access import NamespaceAccess, NamespaceAccessDenied, Use, matches, refused_references
from orchestrator.core.parse import parse_flow
from orchestrator.settings import load_settings

NONE = NamespaceAccess()


@pytest.mark.parametrize("use", list(Use))
def test_a_namespace_may_use_itself_for_everything(use: Use) -> None:
    assert NONE.allows("team.a", "team.a", use)


@pytest.mark.parametrize(("namespace", "target"), [("team.a", "team.b"), ("team", "team.a"), ("team.a", "team")])
def test_without_a_grant_no_other_namespace_is_usable_not_even_a_parent_or_child(namespace: str, target: str) -> None:
    assert not any(NONE.allows(namespace, target, use) for use in Use)


def test_a_grant_is_given_by_the_namespace_being_used_not_by_the_user() -> None:
    access = NamespaceAccess.from_config({"team.b": ["team.a"]})

    assert access.allows("team.a", "team.b", Use.EXECUTION_RUN)
    assert not access.allows("team.b", "team.a", Use.EXECUTION_RUN)


def test_a_grant_may_name_its_uses() -> None:
    access = NamespaceAccess.from_config({"shared": [{"namespace": "team.a", "uses": ["kv.read"]}]})

    assert access.allows("team.a", "shared", Use.KV_READ)
    assert not access.allows("team.a", "shared", Use.KV_WRITE)
    assert not access.allows("team.a", "shared", Use.EXECUTION_RUN)


def test_patterns_cover_one_name_a_subtree_or_everything() -> None:
    assert matches("a.b", "a.b") and not matches("a.b", "a.b.c")
    assert matches("a.b.*", "a.b") and matches("a.b.*", "a.b.c") and not matches("a.b.*", "a.bc")
    assert matches("*", "anything")
    access = NamespaceAccess.from_config({"shared.*": [{"namespace": "*", "uses": ["kv.read"]}]})
    assert access.allows("team.z", "shared.config", Use.KV_READ)


def test_a_denial_names_both_namespaces_the_use_and_where_to_grant_it() -> None:
    with pytest.raises(NamespaceAccessDenied) as caught:
        NONE.require("team.a", "team.b", Use.KV_READ, "kv('k', 'team.b')")

    error = caught.value
    assert (error.namespace, error.target, error.use, error.retryable) == ("team.a", "team.b", Use.KV_READ, False)
    assert "kv('k', 'team.b'): namespace 'team.a' may not use namespace 'team.b' (kv.read)" in error.message
    assert "CHORUS_NAMESPACE_ACCESS" in error.message


@pytest.mark.parametrize(
    "raw",
    [{"team.b": "team.a"}, {"team.b": [3]}, {"team.b": [{"namespace": "team.a", "uses": ["kv.steal"]}]}, {"": []}],
)
def test_an_unusable_configuration_is_refused_at_start_with_its_variable(raw: object) -> None:
    with pytest.raises(Exception, match="CHORUS_NAMESPACE_ACCESS"):
        load_settings(namespace_access=raw)


_FORBIDDEN_FLOW = """\
id: sneaky
namespace: team.a
tasks:
  - id: call
    type: io.kestra.plugin.core.flow.Subflow
    namespace: team.b
    flowId: payroll
  - id: peek
    type: io.kestra.plugin.core.kv.Get
    namespace: team.b
    key: k
  - id: mine
    type: io.kestra.plugin.core.kv.Set
    namespace: team.a
    key: k
    value: v
  - id: dynamic
    type: io.kestra.plugin.core.flow.Subflow
    namespace: "{{ inputs.ns }}"
    flowId: payroll
triggers:
  - id: spy
    type: io.kestra.plugin.core.trigger.Flow
    conditions:
      - type: io.kestra.plugin.core.condition.ExecutionNamespace
        namespace: team.b
  - id: spy-preconditions
    type: io.kestra.plugin.core.trigger.Flow
    preconditions:
      id: p
      flows:
        - namespace: team.b
          flowId: payroll
"""


def test_a_flow_naming_a_forbidden_namespace_is_refused_with_each_line() -> None:
    refused = refused_references(parse_flow(_FORBIDDEN_FLOW), NONE)

    assert [(e.path, e.line) for e in refused] == [
        ("tasks.call.namespace", 4),
        ("tasks.peek.namespace", 8),
        ("triggers.spy", 22),
        ("triggers.spy-preconditions", 27),
    ]
    assert all("may not use namespace 'team.b'" in e.message for e in refused)
    assert "line 4" in str(FlowInvalid(refused))


def test_the_same_flow_is_accepted_once_team_b_grants_team_a() -> None:
    access = NamespaceAccess.from_config({"team.b": ["team.a"]})

    assert refused_references(parse_flow(_FORBIDDEN_FLOW), access) == []


@pytest.mark.parametrize(
    ("task", "use"),
    [
        (
            "type: io.kestra.plugin.core.flow.ForEachItem\n    items: x\n    flowId: c\n    batch: {rows: 1}",
            "execution.run",
        ),
        ("type: io.kestra.plugin.core.kv.Delete\n    key: k", "kv.write"),
        ("type: io.kestra.plugin.core.kv.Put\n    key: k\n    value: v", "kv.write"),
        ("type: io.kestra.plugin.core.trigger.Toggle\n    flowId: c\n    trigger: t", "flow.write"),
        ("type: io.kestra.plugin.core.log.Fetch\n    executionId: x", "log.read"),
        ("type: io.kestra.plugin.core.execution.Resume\n    executionId: x", "execution.resume"),
    ],
    ids=["foreachitem", "kv-delete", "kv-put", "toggle", "fetch", "resume"],
)
def test_each_task_naming_a_namespace_is_checked_for_its_use(task: str, use: str) -> None:
    source = f"id: f\nnamespace: team.a\ntasks:\n  - id: t\n    namespace: team.b\n    {task}\n"

    [refused] = refused_references(parse_flow(source), NONE)

    assert refused.path == "tasks.t.namespace" and refused.line == 4 and f"({use})" in refused.message


def test_every_use_is_named_as_the_api_permission_that_guards_the_same_act() -> None:
    from api.permissions import Permission

    assert {str(u) for u in Use} <= {str(p) for p in Permission}
