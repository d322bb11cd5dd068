"""The notification outbox end to end: a real worker process SIGKILLed while its notification is in flight, seen by
a local receiver that counts requests and deduplicates on the key."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from orchestrator.core.ids import idempotency_key
from tests.e2e.conftest import Stack
from tests.fakes.idempotent_receiver import IdempotentReceiver
from tests.harness.executions import task_runs
from tests.harness.services import psycopg_url
from tests.harness.waiting import wait_until

#: The notification runs on a pool of its own, so the test can kill the one worker that sends it. Its timeouts
#: make the sender's lease short (connect + read + a margin): the sweeper re-sends 5 s after the record.
NOTIFY = """
id: notify-once
namespace: {ns}
tasks:
  - id: notify
    type: io.kestra.plugin.notifications.slack.SlackIncomingWebhook
    url: "{url}"
    messageText: "deployed {{ execution.id }}"
    options:
      connectTimeout: PT1S
      readTimeout: PT2S
    workerGroup:
      key: doomed-notify
  - id: after
    type: io.kestra.plugin.core.debug.Return
    format: after
"""


@pytest.fixture
def receiver() -> Iterator[IdempotentReceiver]:
    with IdempotentReceiver() as server:
        yield server


def _outbox_rows(stack: Stack, execution_id: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(psycopg_url(stack.settings.database_url)) as conn:
        rows = conn.execute(
            "SELECT idempotency_key, status, sends, url, body FROM notification_outbox WHERE execution_id = %s",
            (execution_id,),
        )
        return list(rows)


def _audit_actions(stack: Stack, execution_id: str) -> list[str]:
    audit = stack.api.get(f"/executions/{execution_id}/audit").json()
    assert audit["verified"] is True
    return [e["action"] for e in audit["events"]]


def test_a_worker_killed_between_a_notifications_send_and_its_record_leaves_one_request_per_key(
    stack: Stack,
    deploy_flow: Callable[[str], dict[str, Any]],
    unique_namespace: str,
    receiver: IdempotentReceiver,
) -> None:
    path = f"/services/{uuid.uuid4().hex}"
    deploy_flow(NOTIFY.replace("{url}", receiver.hold(path)))
    stack.cluster.start_worker("doomed-notify")
    try:
        execution_id = stack.run(unique_namespace, "notify-once")["id"]
        # The task run's success and the outbox row committed; the worker is sending: the receiver holds it.
        assert receiver.arrived.wait(60), "the notification never arrived"
        stack.cluster.kill_worker("doomed-notify")  # SIGKILL: the send is never recorded as SENT
        receiver.release()

        done = stack.wait_for_state(execution_id, timeout_s=30)
        wait_until(
            lambda: [r[1] for r in _outbox_rows(stack, execution_id)] == ["SENT"],
            timeout_s=30,
            message="the sweeper sending the notification again",
        )
        time.sleep(6)  # more than a lease and many sweeps: nothing is sent once the row is SENT
    finally:
        receiver.release()
        if "doomed-notify" in stack.cluster.workers:
            stack.cluster.stop_worker("doomed-notify")

    assert done["state"]["current"] == "SUCCESS"
    [run] = task_runs(done, "notify")
    assert len(run["attempts"]) == 1  # the task was not run again: its success was recorded before the send
    key = idempotency_key(run["id"])
    sent = receiver.received(path)
    # At least once on the wire (the killed send, then the sweeper's), always with the task run's one key...
    assert [r.headers.get("idempotency-key") for r in sent] == [key, key]
    assert sent[0].body == sent[1].body and sent[0].json() == {"text": f"deployed {execution_id}"}
    # ...so a receiver that deduplicates on Idempotency-Key applied it exactly once.
    assert [r.headers.get("idempotency-key") for r in receiver.applied_to(path)] == [key]
    # Recorded once (the sweeper's send), and the request erased: a Slack webhook URL is a secret.
    assert _outbox_rows(stack, execution_id) == [(key, "SENT", 1, "", None)]
    assert _audit_actions(stack, execution_id).count("notification.sent") == 1
