"""A message redelivered long after its task run was decided (a Redis reconnection restores unacked
messages) must not re-decide it: a resumed Pause does not pause again, a Subflow does not start a second child."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from celery import Celery

from orchestrator.celery_app import ENTER_TASK_RUN, RUN_TASK_RUN, create_celery_app
from tests.e2e.conftest import Stack

PAUSE_THEN_WORK = """
id: pause-then-work
namespace: {ns}
tasks:
  - id: wait
    type: io.kestra.plugin.core.flow.Pause
    tasks:
      - id: work
        type: io.kestra.plugin.core.flow.Sleep
        duration: PT6S
"""

CHILD = """
id: slow-child
namespace: {ns}
tasks:
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT6S
"""

PARENT = """
id: parent
namespace: {ns}
tasks:
  - id: call
    type: io.kestra.plugin.core.flow.Subflow
    namespace: {ns}
    flowId: slow-child
    wait: true
"""


@pytest.fixture
def celery_app(stack: Stack) -> Iterator[Celery]:
    app = create_celery_app(stack.settings)
    yield app
    app.close()


def _stale_claims(stack: Stack) -> None:
    """Let every claim's heartbeat age past CHORUS_STALE_AFTER_S (3 s in the e2e stack)."""
    time.sleep(3.5)


def test_a_stale_redelivery_of_a_resumed_pause_does_not_pause_it_again(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str, celery_app: Celery
) -> None:
    deploy_flow(PAUSE_THEN_WORK)
    execution_id = stack.run(unique_namespace, "pause-then-work")["id"]
    stack.wait_for_state(execution_id, {"PAUSED"})
    assert stack.api.post(f"/executions/{execution_id}/actions/resume").status_code == 200
    _stale_claims(stack)

    redelivered = celery_app.send_task(
        ENTER_TASK_RUN, kwargs={"execution_id": execution_id, "task_id": "wait", "attempt": 1}, queue="control"
    )

    assert redelivered.get(timeout=20) == "stop"
    done = stack.wait_for_state(execution_id, timeout_s=30)
    assert done["state"]["current"] == "SUCCESS"
    actions = [e["action"] for e in stack.api.get(f"/executions/{execution_id}/audit").json()["events"]]
    assert actions.count("execution.paused") == 1
    assert "task_run.taken_over" not in actions


def test_a_stale_redelivery_of_a_waiting_subflow_starts_no_second_child(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str, celery_app: Celery
) -> None:
    deploy_flow(CHILD)
    deploy_flow(PARENT)
    execution_id = stack.run(unique_namespace, "parent")["id"]
    deadline = time.monotonic() + 20
    while not stack.api.get(f"/executions/{execution_id}").json()["taskRunList"]:
        assert time.monotonic() < deadline, "the subflow task never started"
        time.sleep(0.05)
    _stale_claims(stack)

    redelivered = celery_app.send_task(
        RUN_TASK_RUN, kwargs={"execution_id": execution_id, "task_id": "call", "attempt": 1}, queue="control"
    )

    assert redelivered.get(timeout=20) == "stop"
    done = stack.wait_for_state(execution_id, timeout_s=30)
    assert done["state"]["current"] == "SUCCESS"
    params: dict[str, str | int] = {"namespace": unique_namespace, "flowId": "slow-child", "size": 10}
    children = stack.api.get("/executions/search", params=params).json()["results"]
    assert len(children) == 1
