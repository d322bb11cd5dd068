"""Retry from Flower and `chorus retry`: a real Flower process on the e2e stack's broker, re-applying by id."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import httpx
import psycopg

from orchestrator.celery_app import RUN_INLINE, RUN_TASK_RUN, create_celery_app
from orchestrator.cli.embedded import free_port
from orchestrator.core.plan import Run
from orchestrator.engine.compiler import to_canvas
from tests.e2e.conftest import Stack
from tests.harness.flower import Flower
from tests.harness.services import psycopg_url

#: Fails on its first attempt only (no retry policy): the execution ends FAILED until someone retries.
#: The Sleep first makes the rest travel as a Celery message: a flow of pure control tasks alone runs in the
#: submit's own transaction (engine/local_drive.py) and leaves no message for Flower to show or re-apply.
FLAKY = """
id: flaky
namespace: {ns}
tasks:
  - id: start
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT0S
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: hello
  - id: flaky
    type: io.kestra.plugin.core.execution.Fail
    condition: "{{ taskrun.attemptsCount == 0 }}"
    errorMessage: first attempt fails
  - id: after
    type: io.kestra.plugin.core.debug.Return
    format: done
"""


def _failed_execution(stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], ns: str) -> str:
    deploy_flow(FLAKY)
    execution = stack.wait_for_state(stack.run(ns, "flaky")["id"])
    assert execution["state"]["current"] == "FAILED"
    return str(execution["id"])


def _flower_failure(flower: Flower, name: str, execution_id: str, timeout_s: float = 15) -> str:
    """The exception Flower shows for the failed `name` Celery task of an execution."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        tasks = flower.client.get("/api/tasks", params={"taskname": name, "search": execution_id}).json()
        failed = [info["exception"] for info in tasks.values() if info.get("state") == "FAILURE"]
        if failed:
            return str(failed[0])
        time.sleep(0.2)
    raise AssertionError(f"Flower shows no failed {name} of {execution_id}")


def _actors(stack: Stack, execution_id: str) -> list[str]:
    with psycopg.connect(psycopg_url(stack.settings.database_url)) as conn:
        rows = conn.execute("SELECT actor FROM audit_events WHERE chain_key = %s ORDER BY seq", (execution_id,))
        return [row[0] for row in rows]


def test_flower_refuses_its_api_without_the_configured_credentials(flower: Flower) -> None:
    assert httpx.get(f"{flower.url}/api/workers", timeout=5).status_code == 401
    assert flower.client.get("/api/workers").status_code == 200


def test_flower_shows_each_task_run_with_its_execution_and_task_ids(
    stack: Stack, flower: Flower, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    execution_id = _failed_execution(stack, deploy_flow, unique_namespace)

    uuid, name, kwargs = flower.task_of(execution_id, "flaky")

    info = flower.client.get(f"/api/task/info/{uuid}").json()
    # The flow's three inline tasks ran in one message, which names each task run, then the flow's join.
    assert name == RUN_INLINE
    assert kwargs == {
        "execution_id": execution_id,
        "runs": [
            {"task_id": task_id, "parent_id": None, "iteration": None, "attempt": 1}
            for task_id in ("hello", "flaky", "after")
        ],
        "join": True,
    }
    assert info["routing_key"] == "control"


def test_flowers_task_list_shows_a_failed_task_run_as_a_failure_with_its_error(
    stack: Stack, flower: Flower, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    execution_id = _failed_execution(stack, deploy_flow, unique_namespace)
    uuid, name, _ = flower.task_of(execution_id, "flaky")

    listed = flower.client.get("/api/tasks", params={"taskname": name, "search": execution_id}).json()

    assert listed[uuid]["state"] == "FAILURE"
    assert listed[uuid]["exception"] == (
        f"TaskRunFailed('task run flaky of execution {execution_id} FAILED: first attempt fails')"
    )


def test_chorus_retry_re_sends_the_original_coordinates_to_the_original_queue(
    stack: Stack, flower: Flower, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    execution_id = _failed_execution(stack, deploy_flow, unique_namespace)
    uuid, name, kwargs = flower.task_of(execution_id, "flaky")

    done = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "retry", uuid, "--json", "--actor", "cli:e2e"],
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 0, done.stderr
    sent = json.loads(done.stdout)
    assert (sent["name"], sent["queue"], sent["kwargs"]) == (name, "control", kwargs)
    # The engine's states of the task runs the message named, not Celery's status of the message.
    assert sent["task_run_states"] == {"hello": "SUCCESS", "flaky": "FAILED", "after": "NOT_STARTED"}
    app = create_celery_app(stack.settings)
    try:
        # A worker ran the re-applied message (what it decided is the engine's business).
        assert app.AsyncResult(sent["new_id"]).get(timeout=20) in ("ok", "stop")
    finally:
        app.close()


def test_chorus_retry_of_an_id_of_no_message_and_no_attempt_exits_with_a_message(stack: Stack) -> None:
    # Neither the result backend nor any task run attempt knows it (as for a task run the controller ran in its
    # own transaction, which records no Celery id).
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "retry", "no-such-task"],
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 3
    assert "celery task 'no-such-task' not found: no Celery task and no task run attempt with this id" in done.stderr


def test_a_failed_task_re_applied_through_flowers_api_resumes_the_execution_to_success(
    stack: Stack, flower: Flower, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    execution_id = _failed_execution(stack, deploy_flow, unique_namespace)
    _, name, kwargs = flower.task_of(execution_id, "flaky")

    response = flower.client.post(
        f"/api/task/async-apply/{name}",
        json={"kwargs": kwargs, "queue": "control", "headers": {"chorus_actor": "flower:ops"}},
    )

    assert response.status_code == 200, response.text
    execution = stack.wait_for_state(execution_id, {"SUCCESS"}, timeout_s=30)
    runs = {t["taskId"]: t for t in execution["taskRunList"]}
    assert len(runs["flaky"]["attempts"]) == 2
    assert runs["after"]["outputs"] == {"value": "done"}
    assert "flower:ops" in _actors(stack, execution_id)


def test_a_planners_duplicate_arriving_after_the_attempt_failed_is_passed_over_not_taken_for_a_re_apply(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    # Two sweeps (two API replicas) can both send a due retry before a worker claims it: the second message has
    # its own Celery id and may arrive after the attempt ran and failed. It must not start another attempt (a
    # retry beyond maxAttempt, a FAILED execution restarted by nobody); only a message sent by hand may.
    execution_id = _failed_execution(stack, deploy_flow, unique_namespace)
    app = create_celery_app(stack.settings)
    try:
        duplicate = to_canvas(app, Run(execution_id, "flaky", None, None, 1, "control", False, inline=True))
        assert duplicate.options["headers"] == {"chorus_planned": True}
        result = duplicate.apply_async()
        result.get(timeout=20, propagate=False)  # the worker took it and passed it over
        assert result.state == "SUCCESS", result.result
    finally:
        app.close()
    after = stack.api.get(f"/executions/{execution_id}").json()
    assert after["state"]["current"] == "FAILED"
    runs = {t["taskId"]: t for t in after["taskRunList"]}
    assert len(runs["flaky"]["attempts"]) == 1 and "after" not in runs
    assert not any(actor.startswith("operator:reapply") for actor in _actors(stack, execution_id))


#: An io-pool task that fails (nothing listens on the port): its message went to queue `io`.
UNREACHABLE = """
id: unreachable
namespace: {ns}
tasks:
  - id: call
    type: io.kestra.plugin.core.http.Request
    uri: http://127.0.0.1:{port}/
"""


def test_a_task_run_re_applied_to_another_pools_queue_is_refused_and_does_not_run(
    stack: Stack, flower: Flower, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(UNREACHABLE.replace("{port}", str(free_port())))
    execution = stack.wait_for_state(stack.run(unique_namespace, "unreachable")["id"])
    assert execution["state"]["current"] == "FAILED"
    kwargs = {"execution_id": execution["id"], "task_id": "call", "parent_id": None, "iteration": None, "attempt": 1}
    # The failed task run's finish ran the execution's join in its own transaction (the chain's next link, taken
    # off the chain): nothing follows its message in Celery, so that one is the FAILURE, naming the task run.
    assert _flower_failure(flower, RUN_TASK_RUN, execution["id"]).startswith(
        f"TaskRunFailed('task run call of execution {execution['id']} FAILED: "
    )

    response = flower.client.post(f"/api/task/async-apply/{RUN_TASK_RUN}", json={"kwargs": kwargs, "queue": "scripts"})

    assert response.status_code == 200, response.text
    app = create_celery_app(stack.settings)
    try:
        result = app.AsyncResult(response.json()["task-id"])
        result.get(timeout=20, propagate=False)
        assert result.state == "FAILURE"
        assert "runs on pool 'io', not on queue 'scripts': refused" in str(result.result)
    finally:
        app.close()
    after = stack.api.get(f"/executions/{execution['id']}").json()
    assert after["state"]["current"] == "FAILED"
    assert len(after["taskRunList"][0]["attempts"]) == 1  # nothing ran: no second attempt
