"""Local drive (engine/local_drive.py): a submit runs the leading pure control work in its own transaction.

The engine runs on a real PostgreSQL with the workers' own task bodies (`workers.attempts.LocalRunner`); what it
sends goes to a Redis broker of this test's own, where no worker listens, so the queue shows what was sent.
"""

from __future__ import annotations

from typing import Any

import pytest
import redis
from sqlalchemy import func, select

from orchestrator.core.states import State
from orchestrator.core.transition import Transition
from orchestrator.engine import ClaimedTaskRun, Engine, LocalDecision, TaskOutcome, TaskRunCoordinates
from orchestrator.hooks import EngineHooks
from orchestrator.store.tables import AuditEventRow, ExecutionRow, TaskRunRow
from tests.harness.engines import EngineFactory
from workers.attempts import LocalRunner, run_claimed

LOGS = """
id: logs
namespace: tests.drive
tasks:
  - id: a
    type: io.kestra.plugin.core.log.Log
    message: one
  - id: b
    type: io.kestra.plugin.core.log.Log
    message: "{{ taskrun.id | length }}"
  - id: c
    type: io.kestra.plugin.core.debug.Return
    format: "{{ execution.id | upper }}"
"""

IMPURE = """
id: impure
namespace: tests.drive
tasks:
  - id: a
    type: io.kestra.plugin.core.log.Log
    message: one
  - id: b
    type: io.kestra.plugin.core.log.Log
    message: "{{ kv('missing', errorOnMissing=false) }}"
"""

ASSERTED = """
id: asserted
namespace: tests.drive
sla:
  - {id: condition, type: EXECUTION_ASSERTION, behavior: CANCEL, assert: "{{ true }}"}
tasks:
  - {id: a, type: io.kestra.plugin.core.log.Log, message: one}
"""

CAUGHT = """
id: caught
namespace: tests.drive
tasks:
  - {id: boom, type: io.kestra.plugin.core.execution.Fail, errorMessage: on purpose}
errors:
  - {id: first, type: io.kestra.plugin.core.log.Log, message: first}
  - {id: second, type: io.kestra.plugin.core.log.Log, message: second}
"""


class Crash(BaseException):
    """The process dying mid-drive (BaseException: not a task failure)."""


class _CrashAt(LocalRunner):
    def __init__(self, nth: int) -> None:
        self.nth, self.seen = nth, 0

    def run(self, engine: Engine, claimed: ClaimedTaskRun) -> TaskOutcome:
        self.seen += 1
        if self.seen == self.nth:
            raise Crash
        return super().run(engine, claimed)

    def decide(self, engine: Engine, claimed: ClaimedTaskRun) -> TaskOutcome | LocalDecision:
        return super().decide(engine, claimed)


class _Recorder(EngineHooks):
    def __init__(self) -> None:
        self.seen: list[Transition] = []

    def after_transition(self, transition: Transition) -> None:
        self.seen.append(transition)


def _engine(engine_factory: EngineFactory, database_url: str, broker: str, **settings: Any) -> Engine:
    # A generous time bound by default: a first drive parses and compiles its templates, which on a busy CI
    # machine may take longer than CHORUS_LOCAL_DRIVE_MAX_MS's default; these tests are about what runs where.
    settings.setdefault("local_drive_max_ms", 60_000)
    engine = engine_factory(database_url, broker_url=broker, local_runner=LocalRunner(), **settings)
    for source in (LOGS, IMPURE, ASSERTED, CAUGHT):
        engine.deploy_flow(source, actor="test")
    return engine


def _sent(broker: str) -> int:
    client = redis.Redis.from_url(broker)
    try:
        return sum(int(client.llen(queue)) for queue in ("control", "io", "scripts", "ai"))
    finally:
        client.close()


def _runs(engine: Engine, execution_id: str) -> dict[str, str]:
    with engine.sessions() as session:
        rows = session.scalars(select(TaskRunRow).where(TaskRunRow.execution_id == execution_id))
        return {row.task_id: row.state for row in rows}


def test_a_flow_of_log_tasks_ends_in_the_submit_transaction_and_sends_nothing(
    database_url: str, idle_broker_url: str, engine_factory: EngineFactory
) -> None:
    engine = _engine(engine_factory, database_url, idle_broker_url)
    hooks = _Recorder()
    engine.hooks.append(hooks)

    row = engine.submit("tests.drive", "logs", inputs={}, actor="test")

    assert row.state == State.SUCCESS
    assert _runs(engine, row.id) == {"a": "SUCCESS", "b": "SUCCESS", "c": "SUCCESS"}
    assert _sent(idle_broker_url) == 0
    # The after-commit hooks saw every transition the drive made, as they see a worker's.
    assert [(t.task_id, t.state) for t in hooks.seen if t.kind == "task_run"] == [
        (task, state) for task in "abc" for state in ("RUNNING", "SUCCESS")
    ]
    assert hooks.seen[-1].kind == "execution" and hooks.seen[-1].state == "SUCCESS"


def test_a_crash_mid_drive_leaves_no_execution_at_all(
    database_url: str, idle_broker_url: str, engine_factory: EngineFactory
) -> None:
    engine = _engine(engine_factory, database_url, idle_broker_url)
    engine.local_runner = _CrashAt(2)
    with engine.sessions() as session:
        audited = session.scalar(select(func.count()).select_from(AuditEventRow))

    with pytest.raises(Crash):
        engine.submit("tests.drive", "logs", inputs={}, actor="test")

    with engine.sessions() as session:
        assert session.scalar(select(func.count()).select_from(ExecutionRow)) == 0
        assert session.scalar(select(func.count()).select_from(TaskRunRow)) == 0
        assert session.scalar(select(func.count()).select_from(AuditEventRow)) == audited
    assert _sent(idle_broker_url) == 0


def test_past_the_run_bound_the_rest_is_sent(
    database_url: str, idle_broker_url: str, engine_factory: EngineFactory
) -> None:
    engine = _engine(engine_factory, database_url, idle_broker_url, local_drive_max_runs=2)

    row = engine.submit("tests.drive", "logs", inputs={}, actor="test")

    assert row.state == State.RUNNING
    assert _runs(engine, row.id) == {"a": "SUCCESS", "b": "SUCCESS"}
    assert _sent(idle_broker_url) == 1  # one run_inline message: c and the execution's join


def test_past_the_time_bound_everything_is_sent(
    database_url: str, idle_broker_url: str, engine_factory: EngineFactory
) -> None:
    engine = _engine(engine_factory, database_url, idle_broker_url, local_drive_max_ms=0)

    row = engine.submit("tests.drive", "logs", inputs={}, actor="test")

    assert _runs(engine, row.id) == {}
    assert _sent(idle_broker_url) == 1


def test_a_task_calling_a_process_bound_function_is_sent(
    database_url: str, idle_broker_url: str, engine_factory: EngineFactory
) -> None:
    engine = _engine(engine_factory, database_url, idle_broker_url)

    row = engine.submit("tests.drive", "impure", inputs={}, actor="test")

    assert _runs(engine, row.id) == {"a": "SUCCESS"}
    assert _sent(idle_broker_url) == 1


def test_an_engine_without_a_runner_sends_the_whole_plan(
    database_url: str, idle_broker_url: str, engine_factory: EngineFactory
) -> None:
    engine = _engine(engine_factory, database_url, idle_broker_url)
    engine.local_runner = None

    row = engine.submit("tests.drive", "logs", inputs={}, actor="test")

    assert row.state == State.RUNNING
    assert _runs(engine, row.id) == {}
    assert _sent(idle_broker_url) == 1


def test_a_flow_with_execution_assertions_is_sent_so_they_are_checked_while_it_runs(
    database_url: str, idle_broker_url: str, engine_factory: EngineFactory
) -> None:
    engine = _engine(engine_factory, database_url, idle_broker_url)

    row = engine.submit("tests.drive", "asserted", inputs={}, actor="test")

    assert row.state == State.RUNNING
    assert _runs(engine, row.id) == {}
    assert _sent(idle_broker_url) == 1


def _worker_runs_boom(engine: Engine, execution_id: str) -> tuple[str, object]:
    """What the control worker does with the message of `boom` and the root join: run_inline, in one transaction."""
    verdict, plan, _ = engine.run_inline(
        execution_id,
        [TaskRunCoordinates(execution_id, "boom", None, None, 1)],
        join=True,
        skip_runs=False,
        owner="w1",
        celery_task_id="m1",
        requested_by=None,
        run=lambda claimed: run_claimed(claimed, engine),
    )
    return verdict, plan


def test_a_crash_while_a_workers_join_drives_its_errors_phase_rolls_the_whole_message_back(
    database_url: str, idle_broker_url: str, engine_factory: EngineFactory
) -> None:
    engine = _engine(engine_factory, database_url, idle_broker_url)
    engine.local_runner = None
    execution_id = engine.submit("tests.drive", "caught", inputs={}, actor="test").id  # sent: nobody consumes it
    engine.local_runner = _CrashAt(2)

    with pytest.raises(Crash):
        _worker_runs_boom(engine, execution_id)

    assert _runs(engine, execution_id) == {}  # not even `boom`: the message's transaction rolled back
    engine.local_runner = LocalRunner()
    verdict, plan = _worker_runs_boom(engine, execution_id)  # the redelivery does the whole message
    assert (verdict, plan) == ("stop", None)
    assert _runs(engine, execution_id) == {"boom": "FAILED", "first": "SUCCESS", "second": "SUCCESS"}
    with engine.sessions() as session:
        execution = session.get(ExecutionRow, execution_id)
        assert execution is not None and execution.state == State.FAILED
