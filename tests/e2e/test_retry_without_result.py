"""`chorus retry` of a message the result backend does not know: a chain link (stored with `ignore_result`) or a
result removed (expired), rebuilt from the task run attempt that recorded its Celery id."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from celery import Celery

from orchestrator.celery_app import ENTER_TASK_RUN, RUN_INLINE, RUN_TASK_RUN, create_celery_app
from orchestrator.cli.reapply import FROM_ATTEMPT, locate
from orchestrator.engine import Engine
from orchestrator.store.database import make_engine, make_sessionmaker
from tests.e2e.conftest import Stack
from tests.e2e.test_flower_retry import FLAKY

#: The failing task runs on the io pool and is followed by another task: its `run_task_run` is a chain link
#: other than the last, which stores no result.
FAILS_ON_IO = """
id: fails-on-io
namespace: {ns}
tasks:
  - id: flaky
    type: io.kestra.plugin.core.execution.Fail
    condition: "{{ taskrun.attemptsCount == 0 }}"
    errorMessage: first attempt fails
    workerGroup:
      key: io
  - id: after
    type: io.kestra.plugin.core.debug.Return
    format: done
"""

#: A Sleep first (so the rest travels as a message), then three inline tasks in one `run_inline` message.
FLAKY_INLINE = FLAKY.replace("id: flaky\n", "id: flaky-inline\n", 1)  # test_flower_retry's, another id

#: A flowable whose child fails: the flowable's own message is an `enter_task_run` on the control queue. The
#: Sleep first makes it a message: entered in the submit's transaction (local drive), it would record no id.
FAILS_IN_SEQUENTIAL = """
id: fails-in-sequential
namespace: {ns}
tasks:
  - id: start
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT0S
  - id: group
    type: io.kestra.plugin.core.flow.Sequential
    tasks:
      - id: flaky
        type: io.kestra.plugin.core.execution.Fail
        workerGroup:
          key: io
"""


@pytest.fixture
def celery_app(stack: Stack) -> Iterator[Celery]:
    app = create_celery_app(stack.settings)
    yield app
    app.close()


def _celery_id(execution: dict[str, Any], task_id: str) -> str:
    run = next(t for t in execution["taskRunList"] if t["taskId"] == task_id)
    return str(run["attempts"][-1]["celeryTaskId"])


def _expire(app: Celery, celery_task_id: str, timeout_s: float = 10) -> None:
    """Remove a stored result, as CHORUS_RESULT_EXPIRES_S does; once stored: a worker stores it after the
    task returns, which is after its transaction ended the execution."""
    deadline = time.monotonic() + timeout_s
    while app.backend.get_task_meta(celery_task_id).get("name") is None:
        assert time.monotonic() < deadline, f"no result stored for {celery_task_id}"
        time.sleep(0.1)
    app.backend.forget(celery_task_id)
    assert app.backend.get_task_meta(celery_task_id).get("name") is None


def _retry(stack: Stack, celery_task_id: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "retry", celery_task_id, "--json", "--actor", "cli:no-result"],
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_retry_of_a_failed_chain_link_with_no_stored_result_resumes_the_execution(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str, celery_app: Celery
) -> None:
    deploy_flow(FAILS_ON_IO)
    failed = stack.wait_for_state(stack.run(unique_namespace, "fails-on-io")["id"])
    assert failed["state"]["current"] == "FAILED"
    celery_task_id = _celery_id(failed, "flaky")
    # A chain link other than the last stores nothing: the backend answers as for an id it never saw.
    assert celery_app.backend.get_task_meta(celery_task_id).get("name") is None

    done = _retry(stack, celery_task_id)

    assert done.returncode == 0, done.stderr
    sent = json.loads(done.stdout)
    kwargs = {"execution_id": failed["id"], "task_id": "flaky", "parent_id": None, "iteration": None, "attempt": 1}
    assert (sent["name"], sent["queue"], sent["kwargs"], sent["source"]) == (RUN_TASK_RUN, "io", kwargs, FROM_ATTEMPT)
    assert sent["task_run_states"] == {"flaky": "FAILED"}
    resumed = stack.wait_for_state(failed["id"], {"SUCCESS"})
    runs = {t["taskId"]: t for t in resumed["taskRunList"]}
    assert [a["state"]["current"] for a in runs["flaky"]["attempts"]] == ["FAILED", "SUCCESS"]
    assert runs["flaky"]["attempts"][-1]["celeryTaskId"] == sent["new_id"]
    assert runs["after"]["outputs"] == {"value": "done"}
    audit = stack.api.get(f"/audit/executions/{failed['id']}").json()
    assert audit["verified"] is True
    assert any(e["actor"] == "cli:no-result" for e in audit["events"])


def test_retry_of_an_expired_run_inline_sends_the_failed_task_run_alone(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str, celery_app: Celery
) -> None:
    deploy_flow(FLAKY_INLINE)
    failed = stack.wait_for_state(stack.run(unique_namespace, "flaky-inline")["id"])
    assert failed["state"]["current"] == "FAILED"
    celery_task_id = _celery_id(failed, "flaky")
    assert _celery_id(failed, "hello") == celery_task_id  # one message claimed both
    _expire(celery_app, celery_task_id)  # the last link stored its result

    done = _retry(stack, celery_task_id)

    assert done.returncode == 0, done.stderr
    sent = json.loads(done.stdout)
    # The failed one of the siblings the message claimed, not the one that succeeded; no join (the re-applied
    # task run's worker dispatches what remains).
    runs_sent = [{"task_id": "flaky", "parent_id": None, "iteration": None, "attempt": 1}]
    assert (sent["name"], sent["queue"]) == (RUN_INLINE, "control")
    assert sent["kwargs"] == {"execution_id": failed["id"], "runs": runs_sent, "join": False}
    resumed = stack.wait_for_state(failed["id"], {"SUCCESS"})
    runs = {t["taskId"]: t for t in resumed["taskRunList"]}
    assert len(runs["flaky"]["attempts"]) == 2
    assert len(runs["hello"]["attempts"]) == 1
    assert runs["after"]["outputs"] == {"value": "done"}


def test_a_flowables_message_is_rebuilt_as_an_enter_on_the_control_queue(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str, celery_app: Celery
) -> None:
    deploy_flow(FAILS_IN_SEQUENTIAL)
    failed = stack.wait_for_state(stack.run(unique_namespace, "fails-in-sequential")["id"])
    assert failed["state"]["current"] == "FAILED"
    db = make_engine(stack.settings.database_url, pool_size=1)
    try:
        engine = Engine(stack.settings, make_sessionmaker(db), celery_app)
        group_id, flaky_id = _celery_id(failed, "group"), _celery_id(failed, "flaky")
        # The enter's id holds its replacement's last link (the group's join) until the result expires; the
        # child's link, followed by that join, stored none.
        _expire(celery_app, group_id)
        assert celery_app.backend.get_task_meta(flaky_id).get("name") is None
        group = locate(celery_app, group_id, engine.run_of_celery_task)
        flaky = locate(celery_app, flaky_id, engine.run_of_celery_task)
    finally:
        db.dispose()

    group_kwargs = {"execution_id": failed["id"], "task_id": "group", "parent_id": None, "iteration": None}
    assert (group.name, group.queue, group.kwargs) == (ENTER_TASK_RUN, "control", {**group_kwargs, "attempt": 1})
    flaky_run = next(t for t in failed["taskRunList"] if t["taskId"] == "flaky")
    assert (flaky.name, flaky.queue) == (RUN_TASK_RUN, "io")
    assert flaky.kwargs["parent_id"] == flaky_run["parentTaskRunId"]
