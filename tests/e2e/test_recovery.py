"""Postgres is the truth: duplicates are absorbed by the claim, lost messages are re-sent by the sweeper."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from celery import Celery

from orchestrator.celery_app import RUN_INLINE, RUN_TASK_RUN, create_celery_app
from tests.conftest import empty_redis_db, flush_redis_db
from tests.e2e.conftest import Stack
from tests.harness.engines import open_engine

ONE_LOG = """
id: one-log
namespace: {ns}
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: "hello once"
"""


@pytest.fixture
def celery_app(stack: Stack) -> Iterator[Celery]:
    app = create_celery_app(stack.settings)
    yield app
    app.close()


def test_a_duplicate_delivery_of_a_finished_task_run_does_nothing(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str, celery_app: Celery
) -> None:
    deploy_flow(ONE_LOG)
    execution = stack.wait_for_state(stack.run(unique_namespace, "one-log")["id"])
    kwargs = {"execution_id": execution["id"], "task_id": "hello", "attempt": 1}

    _delivered_twice_changes_nothing(stack, celery_app, RUN_TASK_RUN, kwargs, task_runs=1, logs=["hello once"])


def _delivered_twice_changes_nothing(
    stack: Stack, celery_app: Celery, name: str, kwargs: dict[str, Any], *, task_runs: int, logs: list[str]
) -> None:
    """Deliver a finished execution's message twice: both stop, and no task run, log line or audit event is added."""
    execution_id = kwargs["execution_id"]
    audit_before = stack.api.get(f"/audit/executions/{execution_id}").json()["events"]

    results = [celery_app.send_task(name, kwargs=kwargs, queue="control") for _ in range(2)]

    assert [r.get(timeout=20) for r in results] == ["stop", "stop"]
    after = stack.api.get(f"/executions/{execution_id}").json()
    assert len(after["taskRunList"]) == task_runs
    assert [log["message"] for log in stack.api.get(f"/logs/{execution_id}").json()] == logs
    assert stack.api.get(f"/audit/executions/{execution_id}").json()["events"] == audit_before


THREE_INLINE = """
id: three-inline
namespace: {ns}
tasks:
  - id: a
    type: io.kestra.plugin.core.log.Log
    message: "a once"
  - id: b
    type: io.kestra.plugin.core.debug.Return
    format: "{{ outputs.b is defined }}"
  - id: c
    type: io.kestra.plugin.core.output.OutputValues
    values:
      seen: "{{ outputs.b.value }}"
"""


def test_a_duplicate_run_inline_message_passes_over_ended_task_runs_and_records_nothing(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str, celery_app: Celery
) -> None:
    deploy_flow(THREE_INLINE)
    execution = stack.wait_for_state(stack.run(unique_namespace, "three-inline")["id"])
    assert execution["state"]["current"] == "SUCCESS"
    # The later tasks of one inline message saw the earlier ones' outputs (same transaction).
    outputs = {t["taskId"]: t["outputs"] for t in execution["taskRunList"]}
    assert outputs["b"] == {"value": "false"} and outputs["c"] == {"values": {"seen": "false"}}
    kwargs = {
        "execution_id": execution["id"],
        "runs": [{"task_id": t, "parent_id": None, "iteration": None, "attempt": 1} for t in "abc"],
        "join": True,
    }

    _delivered_twice_changes_nothing(stack, celery_app, RUN_INLINE, kwargs, task_runs=3, logs=["a once"])


def test_an_execution_whose_messages_were_lost_is_finished_by_the_sweeper(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str, redis_url: str
) -> None:
    deploy_flow(ONE_LOG)
    # An engine whose broker nobody consumes: its dispatch is lost, exactly like a Redis wipe.
    nowhere = empty_redis_db(redis_url.rsplit("/", 1)[0], exclude=redis_url)
    try:
        with open_engine(stack.settings.database_url, pool_size=1, broker_url=nowhere) as engine:
            created = engine.submit(unique_namespace, "one-log", inputs={}, actor="test")
    finally:
        flush_redis_db(nowhere)

    execution = stack.wait_for_state(created.id, timeout_s=30)

    assert execution["state"]["current"] == "SUCCESS"
    audit = stack.api.get(f"/audit/executions/{created.id}").json()
    assert audit["verified"] is True


FAILS_ONCE = """
id: fails-once
namespace: {ns}
tasks:
  - id: flaky
    type: io.kestra.plugin.core.log.Log
    message: "{{ taskrun.attemptsCount == 1 ? 'second time lucky' : undefined_on_the_first_attempt }}"
  - id: after
    type: io.kestra.plugin.core.debug.Return
    format: "ran after the retry"
"""


def test_re_applying_a_failed_tasks_message_resumes_the_execution(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str, celery_app: Celery
) -> None:
    deploy_flow(FAILS_ONCE)
    failed = stack.wait_for_state(stack.run(unique_namespace, "fails-once")["id"])
    assert failed["state"]["current"] == "FAILED"

    # What an operator does from Flower: the same small arguments, sent again (a new Celery id).
    celery_app.send_task(
        RUN_TASK_RUN, kwargs={"execution_id": failed["id"], "task_id": "flaky", "attempt": 1}, queue="control"
    )

    resumed = stack.wait_for_state(failed["id"], {"SUCCESS"})
    runs = {t["taskId"]: t for t in resumed["taskRunList"]}
    assert [a["state"]["current"] for a in runs["flaky"]["attempts"]] == ["FAILED", "SUCCESS"]
    assert runs["after"]["outputs"] == {"value": "ran after the retry"}
    audit = stack.api.get(f"/audit/executions/{failed['id']}").json()
    assert audit["verified"] is True
    assert any(e["actor"].startswith("operator:reapply:") for e in audit["events"])


#: FAILS_ONCE behind a Sleep, so its Log travels as a Celery message: run in the submit's transaction
#: (engine/local_drive.py), it would have no Celery id to redeliver.
FAILS_ONCE_SENT = FAILS_ONCE.replace(
    "tasks:\n", "tasks:\n  - id: start\n    type: io.kestra.plugin.core.flow.Sleep\n    duration: PT0S\n", 1
)


def test_a_redelivered_message_of_a_failed_attempt_is_not_a_retry(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str, celery_app: Celery
) -> None:
    deploy_flow(FAILS_ONCE_SENT)
    failed = stack.wait_for_state(stack.run(unique_namespace, "fails-once")["id"])
    flaky = next(t for t in failed["taskRunList"] if t["taskId"] == "flaky")
    original_id = flaky["attempts"][0].get("celeryTaskId")
    assert original_id, "attempts expose the Celery task id an operator copies from Flower"

    result = celery_app.send_task(
        RUN_TASK_RUN,
        kwargs={"execution_id": failed["id"], "task_id": "flaky", "attempt": 1},
        queue="control",
        task_id=original_id,
    )

    # The original attempt's result is a FAILURE (its task run failed); the redelivery, under the same id,
    # replaces it with `stop`: it claimed nothing.
    deadline = time.monotonic() + 20
    while celery_app.AsyncResult(result.id).state != "SUCCESS":
        assert time.monotonic() < deadline, "the redelivered message did not run"
        time.sleep(0.1)
    assert celery_app.AsyncResult(result.id).result == "stop"
    assert stack.api.get(f"/executions/{failed['id']}").json()["state"]["current"] == "FAILED"
