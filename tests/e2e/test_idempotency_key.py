"""`{{ taskrun.idempotencyKey }}` in expressions, and the key an unsafe HTTP call carries across a retry, a restart
and a Flower-style re-apply, as a local receiver sees it."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from orchestrator.celery_app import RUN_TASK_RUN, create_celery_app
from orchestrator.core.ids import idempotency_key
from tests.fakes.base import FakeResponse
from tests.fakes.webhook import WebhookReceiver
from tests.harness.executions import task_runs
from tests.harness.stack import Stack

SIMPLE = """
id: keyed-simple
namespace: {ns}
tasks:
  - id: key
    type: io.kestra.plugin.core.debug.Return
    format: "{{ taskrun.idempotencyKey }}"
"""


def test_an_expression_reads_the_task_runs_idempotency_key(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(SIMPLE)

    execution = stack.wait_for_state(stack.run(unique_namespace, "keyed-simple")["id"])

    assert execution["state"]["current"] == "SUCCESS", execution
    [run] = [t for t in execution["taskRunList"] if t["taskId"] == "key"]
    assert run["outputs"] == {"value": idempotency_key(run["id"])}


#: An unsafe HTTP call that fails on its first attempt (the receiver answers 500) and has no retry: the
#: execution ends FAILED until someone re-applies the task run's message by hand.
FLAKY_POST = """
id: flaky-post
namespace: {ns}
tasks:
  - id: call
    type: io.kestra.plugin.core.http.Request
    uri: "{url}"
    method: POST
    body: '{"order": 42}'
{retry}"""


def test_a_flower_style_re_apply_sends_the_same_idempotency_key_as_the_failed_attempt(
    stack: Stack,
    deploy_flow: Callable[[str], dict[str, Any]],
    unique_namespace: str,
    webhook_receiver: WebhookReceiver,
) -> None:
    path = f"/orders/{uuid.uuid4().hex}"
    url = webhook_receiver.script(path, FakeResponse.of_text("busy", 500), FakeResponse.of_text("ok"))
    deploy_flow(FLAKY_POST.replace("{url}", url).replace("{retry}", ""))
    failed = stack.wait_for_state(stack.run(unique_namespace, "flaky-post")["id"])
    assert failed["state"]["current"] == "FAILED"
    execution_id = failed["id"]

    # What Flower's async-apply (or `chorus retry`) sends: the task run's coordinates, without the planner's header.
    app = create_celery_app(stack.settings)
    try:
        kwargs = {"execution_id": execution_id, "task_id": "call", "parent_id": None, "iteration": None, "attempt": 1}
        result = app.send_task(RUN_TASK_RUN, kwargs=kwargs, queue="io", headers={"chorus_actor": "flower:ops"})
        result.get(timeout=30, propagate=False)
    finally:
        app.close()
    done = stack.wait_for_state(execution_id, {"SUCCESS"}, timeout_s=30)

    [run] = task_runs(done, "call")
    assert len(run["attempts"]) == 2
    keys = [r.headers.get("idempotency-key") for r in webhook_receiver.received(path)]
    assert keys == [idempotency_key(run["id"])] * 2


def _flaky_receiver(receiver: WebhookReceiver) -> tuple[str, str]:
    path = f"/orders/{uuid.uuid4().hex}"
    return path, receiver.script(path, FakeResponse.of_text("busy", 500), FakeResponse.of_text("ok"))


def test_a_retry_sends_the_same_idempotency_key_as_the_failed_attempt(
    stack: Stack,
    deploy_flow: Callable[[str], dict[str, Any]],
    unique_namespace: str,
    webhook_receiver: WebhookReceiver,
) -> None:
    path, url = _flaky_receiver(webhook_receiver)
    retry = "    retry:\n      type: constant\n      interval: PT0.2S\n      maxAttempt: 2\n"
    deploy_flow(FLAKY_POST.replace("{url}", url).replace("{retry}", retry))

    done = stack.wait_for_state(stack.run(unique_namespace, "flaky-post")["id"], timeout_s=60)

    assert done["state"]["current"] == "SUCCESS"
    [run] = task_runs(done, "call")
    assert len(run["attempts"]) == 2
    keys = [r.headers.get("idempotency-key") for r in webhook_receiver.received(path)]
    assert keys == [idempotency_key(run["id"])] * 2


def test_a_restart_sends_the_same_idempotency_key_as_the_failed_attempt(
    stack: Stack,
    deploy_flow: Callable[[str], dict[str, Any]],
    unique_namespace: str,
    webhook_receiver: WebhookReceiver,
) -> None:
    path, url = _flaky_receiver(webhook_receiver)
    deploy_flow(FLAKY_POST.replace("{url}", url).replace("{retry}", ""))
    failed = stack.wait_for_state(stack.run(unique_namespace, "flaky-post")["id"])
    assert failed["state"]["current"] == "FAILED"

    assert stack.api.post(f"/executions/{failed['id']}/restart").status_code == 200
    done = stack.wait_for_state(failed["id"], {"SUCCESS"}, timeout_s=30)

    [run] = task_runs(done, "call")
    keys = [r.headers.get("idempotency-key") for r in webhook_receiver.received(path)]
    assert keys == [idempotency_key(run["id"])] * 2
