"""Every role, every route family, inside and outside its namespace prefix.

Users are bound to prefix `team`; objects live in `team.a` (inside) and `other` (outside). A denied
action on a visible object is 403, on an invisible one 404; searches silently leave invisible objects out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from orchestrator.engine.accounts import ROLES, Binding
from tests.integration.api.conftest import ADMIN, AppFactory, flow_source

INSIDE, OUTSIDE = "team.a", "other"
PASSWORD = "role-password-1"


@dataclass
class World:
    client: TestClient
    executions: dict[str, str]  #: namespace -> execution id

    def call(self, role: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.request(method, f"/api/v1/main{path}", auth=(f"{role}@x", PASSWORD), **kwargs)


@pytest.fixture(scope="module")
def world(make_module_client: AppFactory) -> World:
    client = make_module_client(admin_username=ADMIN[0], admin_password=ADMIN[1])
    accounts = client.app.state.accounts  # type: ignore[attr-defined]
    for role in ROLES:
        accounts.create_user(f"{role}@x", PASSWORD, [Binding(role, "team")], actor="test")
    executions = {}
    for namespace in (INSIDE, OUTSIDE):
        yaml = {"Content-Type": "application/x-yaml"}
        assert (
            client.post("/api/v1/main/flows", content=flow_source(namespace), headers=yaml, auth=ADMIN).status_code
            == 200
        )
        created = client.post(f"/api/v1/main/executions/{namespace}/hello", auth=ADMIN)
        assert created.status_code == 200, created.text
        executions[namespace] = created.json()["id"]
        assert client.put(f"/api/v1/main/namespaces/{namespace}/kv/k", content="1", auth=ADMIN).status_code == 200
    return World(client, executions)


Call = Callable[[World, str, str], httpx.Response]


def _flow_create(w: World, role: str, ns: str) -> httpx.Response:
    source = flow_source(ns, f"new-{role}")
    return w.call(role, "POST", "/flows", content=source, headers={"Content-Type": "application/x-yaml"})


_RUNNERS = {"admin", "developer", "operator"}
FAMILIES: dict[str, tuple[Call, set[str]]] = {
    "flow.read": (lambda w, r, ns: w.call(r, "GET", f"/flows/{ns}/hello"), set(ROLES)),
    "flow.update": (
        lambda w, r, ns: w.call(r, "PUT", f"/flows/{ns}/hello", content=flow_source(ns),
                                headers={"Content-Type": "application/x-yaml"}),
        {"admin", "developer"},
    ),
    "flow.create": (_flow_create, {"admin", "developer"}),
    "flow.revisions": (lambda w, r, ns: w.call(r, "GET", f"/flows/{ns}/hello/revisions"), set(ROLES)),
    "execution.read": (lambda w, r, ns: w.call(r, "GET", f"/executions/{w.executions[ns]}"), set(ROLES)),
    "execution.run": (lambda w, r, ns: w.call(r, "POST", f"/executions/{ns}/hello"), _RUNNERS),
    "execution.kill": (
        lambda w, r, ns: w.call(r, "DELETE", f"/executions/{w.executions[ns]}/actions/kill"),
        {"admin", "developer", "operator"},
    ),
    "execution.resume": (
        lambda w, r, ns: w.call(r, "POST", f"/executions/{w.executions[ns]}/actions/resume"),
        {"admin", "developer", "operator", "approver"},
    ),
    "execution.force-run": (
        lambda w, r, ns: w.call(r, "POST", f"/executions/{w.executions[ns]}/force-run"),
        {"admin", "developer", "operator"},
    ),
    "execution.audit": (lambda w, r, ns: w.call(r, "GET", f"/executions/{w.executions[ns]}/audit"), set(ROLES)),
    "log.read": (lambda w, r, ns: w.call(r, "GET", f"/logs/{w.executions[ns]}"), set(ROLES)),
    "kv.read": (lambda w, r, ns: w.call(r, "GET", f"/namespaces/{ns}/kv/k"), {"admin", "developer", "operator"}),
    "kv.write": (lambda w, r, ns: w.call(r, "PUT", f"/namespaces/{ns}/kv/k2", content='"v"'), {"admin", "developer"}),
    "audit.search": (lambda w, r, ns: w.call(r, "GET", "/audit", params={"namespace": ns}), {"admin"}),
}  # fmt: skip

#: Families whose refusal is 403 even where nothing is visible: they create, or are not about one object.
_FORBIDDEN_NOT_HIDDEN = {"flow.create", "audit.search"}
#: Families whose object is a KV entry: roles without kv.read do not see it (404 rather than 403).
_KV = {"kv.read", "kv.write"}
_KV_READERS = {"admin", "developer", "operator"}


def expected(family: str, role: str, inside: bool) -> set[int]:
    allowed_roles = FAMILIES[family][1]
    if inside and role in allowed_roles:
        # Actions on a run without a worker may conflict (already killed, not paused): still not refused.
        if family == "execution.force-run":
            return {200, 422}  # 422: the run had already ended
        return {200, 204, 409} if family in ("execution.kill", "execution.resume") else {200}
    if family == "audit.search" and role in allowed_roles:
        return {200}  # a search: outside its prefix an admin finds nothing (checked below)
    if family in _FORBIDDEN_NOT_HIDDEN:
        return {403}
    if not inside:
        return {404}
    if family in _KV and role not in _KV_READERS:
        return {404}
    return {403}


CASES = [(f, r, i) for f in FAMILIES for r in ROLES for i in (True, False)]


@pytest.mark.parametrize(
    ("family", "role", "inside"), CASES, ids=[f"{f}-{r}-{'in' if i else 'out'}" for f, r, i in CASES]
)
def test_role_access(world: World, family: str, role: str, inside: bool) -> None:
    call, _ = FAMILIES[family]
    response = call(world, role, INSIDE if inside else OUTSIDE)

    assert response.status_code in expected(family, role, inside), response.text


@pytest.mark.parametrize("role", ROLES)
def test_searches_show_only_namespaces_inside_the_prefix(world: World, role: str) -> None:
    flows = world.call(role, "GET", "/flows/search", params={"size": 100}).json()["results"]
    executions = world.call(role, "GET", "/executions/search", params={"size": 100}).json()["results"]

    assert {f["namespace"] for f in flows} <= {INSIDE} and any(f["namespace"] == INSIDE for f in flows)
    assert {e["namespace"] for e in executions} == {INSIDE}


def test_a_prefix_bound_admin_finds_no_audit_events_outside_its_prefix(world: World) -> None:
    outside = world.call("admin", "GET", "/audit", params={"namespace": OUTSIDE}).json()
    inside = world.call("admin", "GET", "/audit", params={"namespace": INSIDE}).json()

    assert outside["total"] == 0
    assert inside["total"] > 0 and {e["namespace"] for e in inside["results"]} == {INSIDE}


@pytest.mark.parametrize("role", ROLES)
def test_only_a_tenant_wide_admin_manages_users(world: World, role: str) -> None:
    body = {"username": f"made-by-{role}", "password": "long-enough-1", "roles": []}

    assert world.call(role, "POST", "/users", json=body).status_code == 403
    assert (
        world.client.post("/api/v1/main/users", json={**body, "username": f"admin-made-{role}"}, auth=ADMIN).status_code
        == 200
    )


#: Every bulk action (`/executions/{action}/by-ids`): method, path, query, the roles it needs.
_BULK = [
    ("DELETE", "kill", {}, _RUNNERS),
    ("POST", "pause", {}, _RUNNERS),
    ("POST", "resume", {}, {*_RUNNERS, "approver"}),
    ("POST", "restart", {}, _RUNNERS),
    ("POST", "replay", {}, _RUNNERS),
    ("POST", "change-status", {"newStatus": "SUCCESS"}, _RUNNERS),
    ("POST", "labels", {}, _RUNNERS),
    ("POST", "unqueue", {}, _RUNNERS),
    ("POST", "force-run", {}, _RUNNERS),
]
_BULK_CASES = [(m, a, q, roles, role) for m, a, q, roles in _BULK for role in ROLES]


def _bulk_body(action: str, ids: list[str]) -> Any:
    return {"executionsId": ids, "executionLabels": [{"key": "k", "value": "v"}]} if action == "labels" else ids


@pytest.mark.parametrize(
    ("method", "action", "query", "roles", "role"), _BULK_CASES, ids=[f"{c[1]}-{c[4]}" for c in _BULK_CASES]
)
def test_a_bulk_action_treats_invisible_executions_as_missing_and_refuses_a_role_without_its_permission(
    world: World, method: str, action: str, query: dict[str, str], roles: set[str], role: str
) -> None:
    path = f"/executions/{action}/by-ids"
    outside = world.call(role, method, path, params=query, json=_bulk_body(action, [world.executions[OUTSIDE]]))
    assert outside.status_code == 400, outside.text
    assert [e["message"] for e in outside.json()["invalids"]] == ["execution not found"]

    inside = world.call(role, method, path, params=query, json=_bulk_body(action, [world.executions[INSIDE]]))
    # Allowed: done (200) or refused for the execution's state (400, e.g. kill of an ended run); never 403.
    assert inside.status_code in ({200, 400} if role in roles else {403}), inside.text

    # By query, executions outside the role's prefix are not found at all; inside, the permission decides.
    labels = [{"key": "k", "value": "v"}] if action == "labels" else None
    by_query = f"/executions/{action}/by-query"
    assert world.call(role, method, by_query, params={**query, "namespace": OUTSIDE}, json=labels).json() == {
        "count": 0
    }
    inside = world.call(role, method, by_query, params={**query, "namespace": INSIDE}, json=labels)
    assert inside.status_code in ({200, 400} if role in roles else {403}), inside.text
