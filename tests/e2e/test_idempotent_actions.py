"""Replay and restart with an Idempotency-Key act once; a task run set to the state it has changes nothing."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from tests.e2e.conftest import Stack
from tests.e2e.test_execution_control import THREE_STEPS

ONE_STEP = """
id: one-step
namespace: {ns}
tasks:
  - id: only
    type: io.kestra.plugin.core.debug.Return
    format: "done"
"""


def _replays_of(stack: Stack, namespace: str, flow_id: str, original_id: str) -> list[str]:
    found = stack.api.get("/executions/search", params={"namespace": namespace, "flowId": flow_id, "size": 100})
    return [e["id"] for e in found.json()["results"] if e.get("parentId") == original_id]


def _twice_at_once(send: Callable[[], httpx.Response]) -> list[httpx.Response]:
    with ThreadPoolExecutor(2) as pool:
        return list(pool.map(lambda _: send(), range(2)))


def test_a_replay_sent_twice_at_once_with_one_key_makes_one_execution(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(ONE_STEP)
    original = stack.wait_for_state(stack.run(unique_namespace, "one-step")["id"])
    url = f"/executions/{original['id']}/actions/replay"

    answers = _twice_at_once(lambda: stack.api.post(url, headers={"Idempotency-Key": "double-click-1"}))

    assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
    assert answers[0].json()["id"] == answers[1].json()["id"] != original["id"]
    assert _replays_of(stack, unique_namespace, "one-step", original["id"]) == [answers[0].json()["id"]]
    # Another key is another request; no key at all acts every time.
    other = stack.api.post(url, headers={"Idempotency-Key": "double-click-2"})
    assert other.status_code == 200 and other.json()["id"] != answers[0].json()["id"]
    assert len(_replays_of(stack, unique_namespace, "one-step", original["id"])) == 2


def test_a_restart_repeated_with_its_key_answers_instead_of_refusing(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(THREE_STEPS)
    failed = stack.wait_for_state(stack.run(unique_namespace, "three-steps")["id"])
    url = f"/executions/{failed['id']}/actions/restart"

    first = stack.api.post(url, headers={"Idempotency-Key": "restart-1"})
    again = stack.api.post(url, headers={"Idempotency-Key": "restart-1"})

    assert first.status_code == 200 and again.status_code == 200, (first.text, again.text)
    assert first.json()["state"]["current"] == "RESTARTED" and again.json()["id"] == failed["id"]
    ended = stack.wait_for_state(failed["id"])
    assert ended["metadata"]["attemptNumber"] == 2  # restarted once, not twice


def test_an_unusable_idempotency_key_is_refused_naming_the_header(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(ONE_STEP)
    original = stack.wait_for_state(stack.run(unique_namespace, "one-step")["id"])
    url = f"/executions/{original['id']}/actions/replay"

    for bad in ("", "k" * 201):
        response = stack.api.post(url, headers={"Idempotency-Key": bad})
        assert response.status_code == 422, response.text
        assert "Idempotency-Key" in response.text
    assert _replays_of(stack, unique_namespace, "one-step", original["id"]) == []


def test_setting_a_successful_task_run_to_success_does_not_restart_the_execution(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(ONE_STEP)
    done = stack.wait_for_state(stack.run(unique_namespace, "one-step")["id"])
    only = done["taskRunList"][0]

    response = stack.api.post(
        f"/executions/{done['id']}/actions/state", json={"taskRunId": only["id"], "state": "SUCCESS"}
    )

    assert response.status_code == 200, response.text
    after = stack.api.get(f"/executions/{done['id']}").json()
    assert after["state"]["current"] == "SUCCESS"
    assert after["state"]["histories"] == done["state"]["histories"]  # no RESTARTED, no new run
    assert after["metadata"]["attemptNumber"] == 1
    assert after["taskRunList"][0]["state"]["histories"] == only["state"]["histories"]
