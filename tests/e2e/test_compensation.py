"""Declarative compensation end to end: a failed step undoes the steps before it, in reverse, once each, audited;
a failing undo is retried by its own `retry`, and a Restart re-runs only it."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from tests.e2e.conftest import Stack
from tests.e2e.test_cli_client import _chorus
from tests.fakes.base import FakeResponse
from tests.fakes.webhook import WebhookReceiver
from tests.harness.flower import Flower
from tests.harness.saga_flows import http, saga_flow
from tests.harness.waiting import wait_until

TRIP = saga_flow(
    "trip",
    [
        http(
            "book",
            "/hotel",
            undo=[
                http(
                    "unbook",
                    "/hotel/{{ outputs.book.body }}?undoes={{ compensation.task }}",
                    "DELETE",
                    retry={"type": "constant", "interval": "PT0.2S", "maxAttempts": 3},
                )
            ],
        ),
        http("hold", "/seat", undo=[http("release", "/seat/{{ compensation.outputs.body }}", "DELETE")]),
        http("charge", "/charge", undo=[http("refund", "/refund")]),
        http("notify", "/notify", undo=[http("unnotify", "/unnotify")]),
    ],
    errors=[http("alert", "/alert")],
    finally_=[http("cleanup", "/cleanup")],
)


def _calls(receiver: WebhookReceiver, base: str) -> list[str]:
    """The requests the fake received for this test, as `METHOD /path` without the test's prefix."""
    return [f"{r.method} {r.path[len(base) :]}" for r in receiver.received(base)]


def _script_trip(receiver: WebhookReceiver, base: str) -> None:
    receiver.script(f"{base}/hotel", FakeResponse.of_text("H-1"))
    receiver.script(f"{base}/seat", FakeResponse.of_text("S-7"))
    receiver.script(f"{base}/charge", FakeResponse.of_text("card declined", 402))


def _runs(execution: dict[str, Any], task_id: str) -> list[dict[str, Any]]:
    return [t for t in execution["taskRunList"] if t["taskId"] == task_id]


def _audit(stack: Stack, execution_id: str) -> list[dict[str, Any]]:
    chain = stack.api.get(f"/executions/{execution_id}/audit").json()
    assert chain["verified"] is True
    return chain["events"]  # type: ignore[no-any-return]


def test_a_failed_charge_undoes_the_earlier_steps_in_reverse_once_each_and_audits_it(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str, webhook_receiver: WebhookReceiver
) -> None:
    deploy_flow(TRIP)
    base = f"/{uuid.uuid4().hex}"
    _script_trip(webhook_receiver, base)

    created = stack.run(unique_namespace, "trip", base=webhook_receiver.url + base)
    execution = stack.wait_for_state(created["id"], timeout_s=60)

    assert execution["state"]["current"] == "FAILED"
    assert _calls(webhook_receiver, base) == [
        "POST /hotel",
        "POST /seat",
        "POST /charge",
        "POST /alert",  # errors first,
        "DELETE /seat/S-7",  # then the undo steps, latest first,
        "DELETE /hotel/H-1?undoes=book",
        "POST /cleanup",  # then finally
    ]
    hold, book = _runs(execution, "hold")[0], _runs(execution, "book")[0]
    [release], [unbook] = _runs(execution, "release"), _runs(execution, "unbook")
    assert (release["parentTaskRunId"], unbook["parentTaskRunId"]) == (hold["id"], book["id"])
    assert release["state"]["current"] == unbook["state"]["current"] == "SUCCESS"
    assert _runs(execution, "refund") == _runs(execution, "unnotify") == []

    events = _audit(stack, created["id"])
    actions = [e["action"] for e in events]
    started = next(e for e in events if e["action"] == "compensation.started")
    ended = next(e for e in events if e["action"] == "compensation.ended")
    assert started["payload"]["reason"] == "failed"
    steps = [(s["task"], s["undoesTask"]) for s in started["payload"]["steps"]]
    assert steps == [("release", "hold"), ("unbook", "book")]
    assert ended["payload"]["state"] == "SUCCESS"
    assert [s["taskRunId"] for s in ended["payload"]["steps"]] == [release["id"], unbook["id"]]
    assert actions.index("compensation.started") < actions.index("compensation.ended")
    succeeded = [e["subject"] for e in events if e["action"] == "task_run.success"]
    assert succeeded.count(release["id"]) == succeeded.count(unbook["id"]) == 1


def test_a_failing_undo_is_retried_then_a_restart_reruns_only_it(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str, webhook_receiver: WebhookReceiver
) -> None:
    deploy_flow(TRIP)
    base = f"/{uuid.uuid4().hex}"
    _script_trip(webhook_receiver, base)
    webhook_receiver.script(f"{base}/hotel/H-1", FakeResponse.of_text("hotel system down", 503))

    created = stack.run(unique_namespace, "trip", base=webhook_receiver.url + base)
    failed = stack.wait_for_state(created["id"], timeout_s=60)

    assert failed["state"]["current"] == "FAILED"
    [unbook] = _runs(failed, "unbook")
    assert unbook["state"]["current"] == "FAILED"
    assert len(unbook["attempts"]) == 3  # its own retry: maxAttempts 3
    assert _calls(webhook_receiver, base).count("DELETE /hotel/H-1?undoes=book") == 3
    ended = next(e for e in _audit(stack, created["id"]) if e["action"] == "compensation.ended")
    assert ended["payload"]["state"] == "FAILED"

    webhook_receiver.script(f"{base}/hotel/H-1", FakeResponse.of_text("cancelled"))
    restarted = stack.api.post(f"/executions/{created['id']}/restart")
    assert restarted.status_code == 200, restarted.text
    execution = stack.wait_for_state(created["id"], timeout_s=60)

    [unbook] = _runs(execution, "unbook")
    assert unbook["state"]["current"] == "SUCCESS"
    assert len(unbook["attempts"]) == 4
    assert execution["state"]["current"] == "FAILED"  # compensated, not succeeded: the charge still failed
    calls = _calls(webhook_receiver, base)
    assert calls.count("POST /charge") == calls.count("DELETE /seat/S-7") == calls.count("POST /alert") == 1
    assert calls.count("DELETE /hotel/H-1?undoes=book") == 4
    assert calls[-2:] == ["DELETE /hotel/H-1?undoes=book", "POST /cleanup"]  # finally again, after the undo
    endings = [e for e in _audit(stack, created["id"]) if e["action"] == "compensation.ended"]
    assert [e["payload"]["state"] for e in endings] == ["FAILED", "SUCCESS"]

    again = stack.api.post(f"/executions/{created['id']}/restart")
    assert again.status_code == 409, again.text
    assert "was compensated" in again.text


BOOK_THEN_WAIT = saga_flow(
    "book-then-wait",
    [
        http("book", "/hotel", undo=[http("unbook", "/hotel/{{ outputs.book.body }}", "DELETE")]),
        {"id": "wait", "type": "io.kestra.plugin.core.flow.Sleep", "duration": "PT60S"},
        http("notify", "/notify"),
    ],
    finally_=[http("cleanup", "/cleanup")],
)


def _started_waiting(stack: Stack, webhook_receiver: WebhookReceiver, base: str, namespace: str) -> str:
    webhook_receiver.script(f"{base}/hotel", FakeResponse.of_text("H-9"))
    created = stack.run(namespace, "book-then-wait", base=webhook_receiver.url + base)

    def sleeping() -> bool:
        execution = stack.api.get(f"/executions/{created['id']}").json()
        return any(t["taskId"] == "wait" and t["state"]["current"] == "RUNNING" for t in execution["taskRunList"])

    wait_until(sleeping, timeout_s=30)
    return str(created["id"])


def test_a_kill_with_compensation_undoes_what_had_succeeded_then_ends_killed(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str, webhook_receiver: WebhookReceiver
) -> None:
    deploy_flow(BOOK_THEN_WAIT)
    base = f"/{uuid.uuid4().hex}"
    execution_id = _started_waiting(stack, webhook_receiver, base, unique_namespace)

    killed = stack.api.delete(f"/executions/{execution_id}/actions/kill", params={"compensate": "true"})
    assert killed.status_code == 200, killed.text
    execution = stack.wait_for_state(execution_id, {"KILLED"}, timeout_s=30)

    assert _calls(webhook_receiver, base) == ["POST /hotel", "DELETE /hotel/H-9"]  # no notify, no finally
    [unbook] = _runs(execution, "unbook")
    assert unbook["state"]["current"] == "SUCCESS"
    assert _runs(execution, "wait")[0]["state"]["current"] == "KILLED"
    events = _audit(stack, execution_id)
    started = next(e for e in events if e["action"] == "compensation.started")
    assert started["payload"]["reason"] == "killed"
    killing = next(e for e in events if e["action"] == "execution.killing")
    assert killing["payload"]["compensate"] is True


def test_chorus_executions_kill_compensate_undoes_then_kills(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str, webhook_receiver: WebhookReceiver
) -> None:
    deploy_flow(BOOK_THEN_WAIT)
    base = f"/{uuid.uuid4().hex}"
    execution_id = _started_waiting(stack, webhook_receiver, base, unique_namespace)

    done = _chorus(stack, "executions", "kill", execution_id, "--compensate")

    assert done.returncode == 0, done.stderr
    assert f"execution {execution_id} kill: now" in done.stdout
    execution = stack.wait_for_state(execution_id, {"KILLED"}, timeout_s=30)
    assert [r["state"]["current"] for r in _runs(execution, "unbook")] == ["SUCCESS"]
    assert _calls(webhook_receiver, base) == ["POST /hotel", "DELETE /hotel/H-9"]


def test_a_plain_kill_undoes_nothing(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str, webhook_receiver: WebhookReceiver
) -> None:
    deploy_flow(BOOK_THEN_WAIT)
    base = f"/{uuid.uuid4().hex}"
    execution_id = _started_waiting(stack, webhook_receiver, base, unique_namespace)

    assert stack.api.delete(f"/executions/{execution_id}/actions/kill").status_code == 200
    execution = stack.wait_for_state(execution_id, {"KILLED"}, timeout_s=30)

    assert _runs(execution, "unbook") == []
    assert _calls(webhook_receiver, base) == ["POST /hotel"]
    assert not any(e["action"].startswith("compensation.") for e in _audit(stack, execution_id))


def test_a_kill_with_a_compensate_flag_that_is_not_a_boolean_names_the_field_and_kills_nothing(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str, webhook_receiver: WebhookReceiver
) -> None:
    deploy_flow(BOOK_THEN_WAIT)
    base = f"/{uuid.uuid4().hex}"
    execution_id = _started_waiting(stack, webhook_receiver, base, unique_namespace)

    answer = stack.api.delete(f"/executions/{execution_id}/actions/kill", params={"compensate": "perhaps"})

    assert answer.status_code == 422, answer.text
    assert "compensate" in answer.text
    assert stack.api.get(f"/executions/{execution_id}").json()["state"]["current"] == "RUNNING"
    stack.api.delete(f"/executions/{execution_id}/actions/kill")  # not left sleeping for a minute


EACH_THEN_FAIL = """
id: each-then-fail
namespace: {ns}
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: ["a", "b"]
    tasks:
      - id: reserve
        type: io.kestra.plugin.core.debug.Return
        format: "R-{{ taskrun.value }}"
        compensate:
          - id: unreserve
            type: io.kestra.plugin.core.debug.Return
            format: "undo {{ compensation.task }} {{ compensation.value }} {{ compensation.outputs.value }}"
  - id: boom
    type: io.kestra.plugin.core.execution.Fail
"""


def test_each_iteration_is_undone_with_its_own_value_and_outputs_latest_first(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(EACH_THEN_FAIL)

    execution = stack.run_to_end(unique_namespace, "each-then-fail")

    assert execution["state"]["current"] == "FAILED"
    reserves = {r["id"]: r["value"] for r in _runs(execution, "reserve")}
    undone = [(reserves[r["parentTaskRunId"]], r["outputs"]["value"]) for r in _runs(execution, "unreserve")]
    assert undone == [("b", "undo reserve b R-b"), ("a", "undo reserve a R-a")]


def test_a_restart_after_a_failed_undo_of_a_kill_finishes_the_undo_and_ends_killed_again(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str, webhook_receiver: WebhookReceiver
) -> None:
    deploy_flow(BOOK_THEN_WAIT)
    base = f"/{uuid.uuid4().hex}"
    webhook_receiver.script(f"{base}/hotel/H-9", FakeResponse.of_text("down", 503))
    execution_id = _started_waiting(stack, webhook_receiver, base, unique_namespace)
    stack.api.delete(f"/executions/{execution_id}/actions/kill", params={"compensate": "true"}).raise_for_status()
    killed = stack.wait_for_state(execution_id, {"KILLED"}, timeout_s=30)
    assert [r["state"]["current"] for r in _runs(killed, "unbook")] == ["FAILED"]

    webhook_receiver.script(f"{base}/hotel/H-9", FakeResponse.of_text("cancelled"))
    stack.api.post(f"/executions/{execution_id}/restart").raise_for_status()
    wait_until(lambda: _calls(webhook_receiver, base).count("DELETE /hotel/H-9") == 2, timeout_s=30)
    execution = stack.wait_for_state(execution_id, {"KILLED", "FAILED", "SUCCESS"}, timeout_s=30)

    assert execution["state"]["current"] == "KILLED"
    assert [r["state"]["current"] for r in _runs(execution, "unbook")] == ["SUCCESS"]
    assert _calls(webhook_receiver, base) == ["POST /hotel", "DELETE /hotel/H-9", "DELETE /hotel/H-9"]  # no finally
    endings = [e["payload"]["state"] for e in _audit(stack, execution_id) if e["action"] == "compensation.ended"]
    assert endings == ["FAILED", "SUCCESS"]


def test_a_failed_undo_re_applied_from_flower_goes_on_with_the_rest_of_the_undo_then_finally(
    stack: Stack,
    flower: Flower,
    deploy_flow: Callable[[str], dict[str, Any]],
    unique_namespace: str,
    webhook_receiver: WebhookReceiver,
) -> None:
    deploy_flow(TRIP)
    base = f"/{uuid.uuid4().hex}"
    _script_trip(webhook_receiver, base)
    webhook_receiver.script(f"{base}/seat/S-7", FakeResponse.of_text("seat system down", 503))
    created = stack.run(unique_namespace, "trip", base=webhook_receiver.url + base)
    failed = stack.wait_for_state(created["id"], timeout_s=60)
    assert [r["state"]["current"] for r in _runs(failed, "release")] == ["FAILED"]
    assert _runs(failed, "unbook") == []  # the undo steps after a failed one wait

    webhook_receiver.script(f"{base}/seat/S-7", FakeResponse.of_text("released"))
    _, name, kwargs = flower.task_of(created["id"], "release")
    response = flower.client.post(
        f"/api/task/async-apply/{name}",
        json={"kwargs": kwargs, "queue": "io", "headers": {"chorus_actor": "flower:ops"}},
    )
    assert response.status_code == 200, response.text
    wait_until(lambda: _calls(webhook_receiver, base).count("POST /cleanup") == 2, timeout_s=30)
    execution = stack.wait_for_state(created["id"], timeout_s=30)

    assert execution["state"]["current"] == "FAILED"
    assert [r["state"]["current"] for r in _runs(execution, "release")] == ["SUCCESS"]
    assert [r["state"]["current"] for r in _runs(execution, "unbook")] == ["SUCCESS"]
    assert _calls(webhook_receiver, base)[-4:] == [
        "POST /cleanup",
        "DELETE /seat/S-7",
        "DELETE /hotel/H-1?undoes=book",
        "POST /cleanup",
    ]


def _compensated_trip(stack: Stack, receiver: WebhookReceiver, namespace: str) -> tuple[str, dict[str, Any]]:
    base = f"/{uuid.uuid4().hex}"
    _script_trip(receiver, base)
    created = stack.run(namespace, "trip", base=receiver.url + base)
    return base, stack.wait_for_state(created["id"], timeout_s=60)


def test_a_replay_from_the_failed_step_undoes_the_copied_steps_again_in_the_new_execution(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str, webhook_receiver: WebhookReceiver
) -> None:
    deploy_flow(TRIP)
    base, first = _compensated_trip(stack, webhook_receiver, unique_namespace)
    charge = _runs(first, "charge")[0]

    replayed = stack.api.post(f"/executions/{first['id']}/replay", params={"taskRunId": charge["id"]})
    assert replayed.status_code == 200, replayed.text
    execution = stack.wait_for_state(replayed.json()["id"], timeout_s=60)

    assert execution["state"]["current"] == "FAILED"
    assert [r["state"]["current"] for r in _runs(execution, "release") + _runs(execution, "unbook")] == [
        "SUCCESS",
        "SUCCESS",
    ]
    calls = _calls(webhook_receiver, base)
    assert calls.count("POST /hotel") == calls.count("POST /seat") == 1  # copied, not run again
    assert calls.count("DELETE /seat/S-7") == calls.count("DELETE /hotel/H-1?undoes=book") == 2


def test_a_replay_from_a_compensation_is_refused(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str, webhook_receiver: WebhookReceiver
) -> None:
    deploy_flow(TRIP)
    _, first = _compensated_trip(stack, webhook_receiver, unique_namespace)
    release = _runs(first, "release")[0]

    refused = stack.api.post(f"/executions/{first['id']}/replay", params={"taskRunId": release["id"]})

    assert refused.status_code == 409, refused.text
    assert "is a compensation" in refused.text
