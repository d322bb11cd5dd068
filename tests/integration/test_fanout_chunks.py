"""Fan-out chunks: a ForEach of inline children sends CHORUS_FANOUT_CHUNK branches per message (a real worker).

The worker runs in this process (Celery's test worker, consuming a Redis database of the test's own), so the
`before_task_publish` signal sees every message: the ones the test sends and the ones the worker sends.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from celery import Celery
from celery.contrib.testing.worker import start_worker
from celery.signals import before_task_publish
from sqlalchemy import func, select

from orchestrator import store
from orchestrator.celery_app import JOIN_TASK_RUN, RUN_INLINE, create_celery_app
from orchestrator.engine import Engine
from orchestrator.settings import load_settings
from orchestrator.store.database import read_only
from orchestrator.store.tables import AuditEventRow, LogLineRow, TaskRunRow
from tests.harness.engines import EngineFactory
from tests.harness.waiting import wait_until
from workers.runtime import register_tasks

WIDE = """
id: wide
namespace: tests.fanout
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: {values}
    concurrencyLimit: 0
    tasks:
      - id: child
        type: io.kestra.plugin.core.log.Log
        message: "child {{{{ taskrun.value }}}}"
  - id: after
    type: io.kestra.plugin.core.log.Log
    message: fan-in
"""

FAILING = """
id: failing
namespace: tests.fanout
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
    concurrencyLimit: 0
    tasks:
      - id: child
        type: io.kestra.plugin.core.execution.Fail
        condition: "{{ taskrun.value == '1' }}"
        errorMessage: child 1 fails
  - id: after
    type: io.kestra.plugin.core.log.Log
    message: never after a failure
errors:
  - id: on_error
    type: io.kestra.plugin.core.log.Log
    message: the errors branch ran
"""


@dataclass
class Sent:
    """Every message published in this process while the test runs: (task name, kwargs, Celery id)."""

    messages: list[tuple[str, dict[str, Any], str]] = field(default_factory=list)

    def record(
        self, sender: str | None = None, body: Any = None, headers: dict[str, Any] | None = None, **_: Any
    ) -> None:
        self.messages.append((str(sender), dict(body[1]) if body else {}, str((headers or {}).get("id"))))

    def named(self, name: str) -> list[tuple[dict[str, Any], str]]:
        return [(kwargs, celery_id) for task, kwargs, celery_id in self.messages if task == name]


@dataclass
class Cluster:
    engine: Engine
    app: Celery
    sent: Sent


def _cluster(database_url: str, broker_url: str, engine_factory: EngineFactory, chunk: int) -> Iterator[Cluster]:
    # No local drive: these tests count what travels, so every child of the ForEach must travel (with it, the
    # worker's decision would run the first children in its own transaction; test_local_drive covers that).
    settings = load_settings(
        database_url=database_url, broker_url=broker_url, fanout_chunk=chunk, local_drive_max_runs=0
    )
    app = create_celery_app(settings, main=f"fanout-{chunk}")
    # An in-process worker must leave this process's logging alone (later tests read their loggers' records):
    # Celery's test worker sets the root logger's level (ERROR by default) and keeps it after it stops.
    app.conf.worker_hijack_root_logger = False
    root_level = logging.getLogger().level
    register_tasks(app, settings)
    engine = engine_factory(database_url, celery=app, broker_url=broker_url, fanout_chunk=chunk, local_drive_max_runs=0)
    sent = Sent()
    before_task_publish.connect(sent.record, weak=False)
    try:
        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=30):
            yield Cluster(engine, app, sent)
    finally:
        before_task_publish.disconnect(sent.record)
        app.close()
        logging.getLogger().setLevel(root_level)


@pytest.fixture
def cluster50(database_url: str, idle_broker_url: str, engine_factory: EngineFactory) -> Iterator[Cluster]:
    yield from _cluster(database_url, idle_broker_url, engine_factory, 50)


@pytest.fixture
def cluster4(database_url: str, idle_broker_url: str, engine_factory: EngineFactory) -> Iterator[Cluster]:
    yield from _cluster(database_url, idle_broker_url, engine_factory, 4)


def _run_to_end(engine: Engine, source: str, flow_id: str, timeout_s: float = 120) -> str:
    engine.deploy_flow(source, actor="test")
    execution_id = engine.submit("tests.fanout", flow_id, inputs={}, actor="test").id

    def ended() -> str | None:
        with read_only(engine.sessions) as session:
            row = store.get_execution(session, execution_id)
            return row.state if row is not None and row.state in ("SUCCESS", "FAILED", "WARNING") else None

    wait_until(ended, timeout_s=timeout_s, message=f"execution {execution_id} ended")
    return execution_id


def _task_runs(engine: Engine, execution_id: str) -> list[tuple[str, str | None, str]]:
    with read_only(engine.sessions) as session:
        return [(r.task_id, r.value, r.state) for r in store.task_runs_of(session, execution_id)]


def _state(engine: Engine, execution_id: str) -> str:
    with read_only(engine.sessions) as session:
        row = store.get_execution(session, execution_id)
        assert row is not None
        return row.state


def _counts(engine: Engine, execution_id: str) -> tuple[int, int, int]:
    with read_only(engine.sessions) as session:
        return (
            session.scalar(select(func.count()).where(TaskRunRow.execution_id == execution_id)) or 0,
            session.scalar(select(func.count()).where(LogLineRow.execution_id == execution_id)) or 0,
            session.scalar(select(func.count()).where(AuditEventRow.chain_key == execution_id)) or 0,
        )


def test_a_foreach_of_200_log_children_sends_4_chunks_and_joins_once(cluster50: Cluster) -> None:
    engine, sent = cluster50.engine, cluster50.sent
    execution_id = _run_to_end(engine, WIDE.format(values=json.dumps(list(range(200)))), "wide")

    assert _state(engine, execution_id) == "SUCCESS"
    runs = _task_runs(engine, execution_id)
    children = [r for r in runs if r[0] == "child"]
    assert len(children) == 200 and {state for _, _, state in children} == {"SUCCESS"}
    assert sorted(int(value or -1) for _, value, _ in children) == list(range(200))
    assert [r for r in runs if r[0] == "after"] == [("after", None, "SUCCESS")]  # the fan-in ran, once
    chunks = [kwargs for kwargs, _ in sent.named(RUN_INLINE) if kwargs.get("independent")]
    assert [len(kwargs["runs"]) for kwargs in chunks] == [50, 50, 50, 50]
    each_id = next(r["parent_id"] for r in chunks[0]["runs"])
    assert [kwargs for kwargs, _ in sent.named(JOIN_TASK_RUN) if kwargs.get("parent_id") == each_id] != []
    assert len([k for k, _ in sent.named(JOIN_TASK_RUN) if k.get("parent_id") == each_id]) == 1
    assert len(sent.messages) <= 8, [task for task, _, _ in sent.messages]  # was 200 child messages and more


def test_a_failing_child_stops_no_sibling_and_the_errors_branch_fails_the_execution(cluster4: Cluster) -> None:
    engine, sent = cluster4.engine, cluster4.sent
    execution_id = _run_to_end(engine, FAILING, "failing")

    assert _state(engine, execution_id) == "FAILED"
    runs = _task_runs(engine, execution_id)
    children = {value: state for task, value, state in runs if task == "child"}
    assert children == {str(i): "FAILED" if i == 1 else "SUCCESS" for i in range(10)}  # 2 and 3 ran after 1
    assert [(t, s) for t, _, s in runs if t in ("each", "on_error", "after")] == [
        ("each", "FAILED"),
        ("on_error", "SUCCESS"),
    ]
    assert [len(kwargs["runs"]) for kwargs, _ in sent.named(RUN_INLINE) if kwargs.get("independent")] == [4, 4, 2]


def test_a_redelivered_chunk_changes_nothing_and_runs_no_failed_child_again(cluster4: Cluster) -> None:
    engine, app, sent = cluster4.engine, cluster4.app, cluster4.sent
    execution_id = _run_to_end(engine, FAILING, "failing")
    before = (_counts(engine, execution_id), _task_runs(engine, execution_id))
    chunks = [(kwargs, celery_id) for kwargs, celery_id in sent.named(RUN_INLINE) if kwargs.get("independent")]
    assert len(chunks) == 3

    # The same messages again (same kwargs, same Celery ids): ended children are passed over, the failed one
    # too (its message is no re-apply): nothing runs, so nothing fails.
    verdicts = [app.tasks[RUN_INLINE].apply(kwargs=kwargs, task_id=celery_id).get() for kwargs, celery_id in chunks]
    assert verdicts == ["ok", "ok", "ok"]

    assert (_counts(engine, execution_id), _task_runs(engine, execution_id)) == before
    assert _state(engine, execution_id) == "FAILED"


FLAKY = FAILING.replace("id: failing", "id: flaky").replace(
    "{{ taskrun.value == '1' }}", "{{ taskrun.value == '1' and taskrun.attemptsCount == 0 }}"
)


def test_a_re_applied_chunk_gives_its_failed_child_a_new_attempt_and_resumes_the_execution(cluster4: Cluster) -> None:
    engine, app, sent = cluster4.engine, cluster4.app, cluster4.sent
    execution_id = _run_to_end(engine, FLAKY, "flaky")
    assert _state(engine, execution_id) == "FAILED"
    (kwargs,) = [k for k, _ in sent.named(RUN_INLINE) if any(r["iteration"] == 1 for r in k["runs"])]

    # An operator re-applies the chunk (a new Celery id, as Flower's re-apply sends it).
    assert app.tasks[RUN_INLINE].apply(kwargs=kwargs, task_id="re-applied").get() == "ok"

    wait_until(lambda: _state(engine, execution_id) == "SUCCESS", timeout_s=60, message="resumed to SUCCESS")
    with read_only(engine.sessions) as session:
        children = {
            r.value: (r.state, r.attempt) for r in store.task_runs_of(session, execution_id) if r.task_id == "child"
        }
    assert children == {str(i): ("SUCCESS", 2 if i == 1 else 1) for i in range(10)}  # only the failed one ran again
    assert ("after", None, "SUCCESS") in _task_runs(engine, execution_id)
