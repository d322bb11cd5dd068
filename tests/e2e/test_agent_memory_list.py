"""`GET /namespaces/{ns}/ai/memory`: a namespace's live agent memories (id, message count, last write), with RBAC.

Against the real stack and the OpenAI-wire fake: memories written by agent runs are listed, an expired or
erased one is not, another namespace's are not, and a person without kv.read on the namespace gets a 404.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from orchestrator.engine.accounts import Binding
from tests.e2e.conftest import Stack
from tests.e2e.test_agent_memory import REMEMBERING, _ask
from tests.fakes.openai_wire import OpenAIWire
from tests.harness.stack import secured_api_over

ADMIN = ("memory-list-admin@chorus.test", "memory-list-admin-password")
VIEWER = ("vera-viewer", "vera-password-1")
OPERATOR = ("otto-operator", "otto-password-1")


@pytest.fixture(scope="module")
def secured_api(stack: Stack) -> Iterator[TestClient]:
    with secured_api_over(
        stack, ADMIN, {VIEWER: [Binding("viewer", "tests.e2e")], OPERATOR: [Binding("operator", "tests.e2e")]}
    ) as client:
        yield client


def _listed(stack: Stack, namespace: str) -> list[dict[str, Any]]:
    response = stack.api.get(f"/namespaces/{namespace}/ai/memory")
    assert response.status_code == 200, response.text
    return response.json()["results"]  # type: ignore[no-any-return]


def test_the_live_memories_of_a_namespace_are_listed_newest_write_first_and_an_erased_one_goes(
    stack: Stack,
    deploy_flow: Callable[[str], dict[str, Any]],
    unique_namespace: str,
    openai_wire: OpenAIWire,
    secured_api: TestClient,
) -> None:
    deploy_flow(REMEMBERING)
    assert _listed(stack, unique_namespace) == []
    _ask(stack, openai_wire, unique_namespace, "I am short-lived", "Bye", who="mayfly", ttl="PT1S")
    _ask(stack, openai_wire, unique_namespace, "My name is Ann", "Hi Ann", who="ann")
    _ask(stack, openai_wire, unique_namespace, "My name is Bob", "Hi Bob", who="bob")
    _ask(stack, openai_wire, unique_namespace, "Still Ann", "Yes Ann", who="ann")
    time.sleep(1.1)  # the mayfly's TTL is over (its one write was before the others)

    listed = _listed(stack, unique_namespace)
    assert [(m["memoryId"], m["messages"]) for m in listed] == [("ann", 4), ("bob", 2)]
    assert datetime.fromisoformat(listed[0]["lastWrite"]) > datetime.fromisoformat(listed[1]["lastWrite"])
    first = stack.api.get(f"/namespaces/{unique_namespace}/ai/memory", params={"size": 1}).json()["results"]
    assert [m["memoryId"] for m in first] == ["ann"]
    assert _listed(stack, f"tests.e2e.n{uuid.uuid4().hex[:10]}") == []  # another namespace: none of these

    assert stack.api.delete(f"/namespaces/{unique_namespace}/ai/memory/ann").json()["erased"] == 4
    assert [m["memoryId"] for m in _listed(stack, unique_namespace)] == ["bob"]

    path = f"/api/v1/main/namespaces/{unique_namespace}/ai/memory"
    assert secured_api.get(path, auth=OPERATOR).status_code == 200  # kv.read on tests.e2e
    assert secured_api.get(path, auth=VIEWER).status_code == 404  # no kv.read: the namespace's memories are invisible
    denied = secured_api.get(path, auth=("vera-viewer", "wrong-password"))
    assert denied.status_code == 401
    bad_size = stack.api.get(f"/namespaces/{unique_namespace}/ai/memory?size=0")
    assert bad_size.status_code == 422 and "size" in bad_size.text, bad_size.text
    events = secured_api.get(
        "/api/v1/main/audit", params={"namespace": unique_namespace, "action": "ai_memory.list"}, auth=ADMIN
    ).json()["results"]
    assert [e["payload"]["outcome"] for e in events] == ["denied"], events  # a read records only its denial
