"""The role table and namespace prefixes: who may do what, where."""

from __future__ import annotations

import pytest

from api.permissions import ROLE_PERMISSIONS, Permission, allowed, prefixes, require, require_on
from orchestrator.core.errors import NotFound
from orchestrator.engine.accounts import ROLES, Binding, PermissionDenied, Principal
from orchestrator.store.queries import namespace_in_prefix


def who(*bindings: tuple[str, str]) -> Principal:
    return Principal("user:test", tuple(Binding(role, prefix) for role, prefix in bindings))


@pytest.mark.parametrize(
    ("namespace", "prefix", "inside"),
    [("company", "company", True), ("company.team", "company", True), ("company.team", "company.", True),
     ("companyx", "company", False), ("other", "company", False), ("anything", "", True)],
)  # fmt: skip
def test_a_prefix_covers_the_namespace_and_its_children_only(namespace: str, prefix: str, inside: bool) -> None:
    assert namespace_in_prefix(namespace, prefix) is inside


def test_every_role_has_a_row_and_admin_has_every_permission() -> None:
    assert tuple(ROLE_PERMISSIONS) == ROLES
    assert ROLE_PERMISSIONS["admin"] == frozenset(Permission)


def test_roles_nest_from_viewer_to_developer() -> None:
    viewer, approver, operator, developer = (
        ROLE_PERMISSIONS[r] for r in ("viewer", "approver", "operator", "developer")
    )
    assert viewer < approver < operator < developer


def test_a_binding_grants_only_inside_its_prefix() -> None:
    dev = who(("developer", "company"))

    assert allowed(dev, Permission.FLOW_WRITE, "company.team")
    assert not allowed(dev, Permission.FLOW_WRITE, "other")
    assert prefixes(dev, Permission.FLOW_READ) == ("company",)


def test_an_unprefixed_binding_means_every_namespace() -> None:
    assert prefixes(who(("viewer", "")), Permission.FLOW_READ) is None


def test_acting_on_an_invisible_object_is_not_found_and_on_a_visible_one_forbidden() -> None:
    viewer = who(("viewer", "company"))

    with pytest.raises(NotFound):
        require_on(viewer, Permission.FLOW_WRITE, "flow", "other", "other.f")
    with pytest.raises(PermissionDenied) as caught:
        require_on(viewer, Permission.FLOW_WRITE, "flow", "company", "company.f")
    assert caught.value.permission == Permission.FLOW_WRITE
    assert caught.value.namespace == "company"


def test_require_passes_silently_when_allowed() -> None:
    require(who(("operator", "")), Permission.EXECUTION_RUN, "x")
