"""Due times and progress stamps are by the database's clock, so processes whose wall clocks disagree by seconds
(the chaos suite's `clock skew`: server +2 s, workers -2 s and +3 s) neither fire a timer early or late, nor
re-send a retry before a worker will take it, nor judge a live execution stale.

Each test skews this process's wall clock (`store.utcnow` and the `datetime` the worker bodies read) far more
than any host would, so a comparison left on a wall clock shows as minutes, not milliseconds. Before the fix, a
retry's `retry_at` came from the finishing worker's clock and the sweeper compared it with its own: a sweeper
ahead of the worker that will claim re-sent the retry every sweep until the database's clock caught up (the
chaos run's hundreds of "flaky attempt 2 passed over" messages).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import redis
from sqlalchemy import text

from orchestrator import store
from orchestrator.core.states import State
from orchestrator.engine import ClaimedTaskRun, Engine, TaskOutcome, TaskRunCoordinates, sleeps
from orchestrator.engine.sweeper import Sweeper
from orchestrator.store.clock import DbClock
from orchestrator.store.database import read_only, transaction
from tests.conftest import empty_redis_db, flush_redis_db
from tests.harness import services
from tests.harness.engines import EngineFactory

RETRY = """
id: retried
namespace: tests.skew
tasks:
  - id: flaky
    type: io.kestra.plugin.core.log.Log
    message: flaky
    retry:
      type: constant
      interval: PT30S
      maxAttempts: 3
"""

PAUSE = """
id: paused
namespace: tests.skew
tasks:
  - id: wait
    type: io.kestra.plugin.core.flow.Pause
    delay: PT1M
"""

LOG = "id: logged\nnamespace: tests.skew\ntasks:\n  - id: t\n    type: Log\n    message: hi\n"

#: How far the database's and this process's readings of one moment may differ (one host; a loaded machine).
SLACK = timedelta(seconds=10)
#: The skew: any comparison left on a wall clock is off by this much, far beyond `SLACK`.
SKEW = timedelta(hours=1)


@pytest.fixture(scope="module")
def broker_url(redis_url: str) -> Iterator[str]:
    """A Redis database no worker consumes: the sweeper's re-sends stay countable."""
    url = empty_redis_db(services.redis_url(), exclude=redis_url)
    yield url
    flush_redis_db(url)


@pytest.fixture
def engine(database_url: str, broker_url: str, engine_factory: EngineFactory) -> Engine:
    return engine_factory(database_url, broker_url=broker_url, stale_after_s=3)


def _skew(monkeypatch: pytest.MonkeyPatch, offset: timedelta) -> None:
    """This process's wall clock is `offset` off: the engine's `utcnow` and the worker bodies' `datetime.now`."""
    real = datetime.now
    monkeypatch.setattr(store, "utcnow", lambda: real(UTC) + offset)
    monkeypatch.setattr("orchestrator.store.clock.utcnow", lambda: real(UTC) + offset)

    class Skewed(datetime):
        @classmethod
        def now(cls, tz: object = None) -> datetime:  # type: ignore[override]
            return real(tz) + offset  # type: ignore[arg-type]

    for name in ("workers.control", "workers.approval", "workers.runtime"):
        module = sys.modules.get(name)
        if module is not None and getattr(module, "datetime", None) is datetime:
            monkeypatch.setattr(module, "datetime", Skewed)


def _db_now(engine: Engine) -> datetime:
    with read_only(engine.sessions) as session:
        return store.db_now(session)


def _start(engine: Engine, flow: str, task_id: str) -> TaskRunCoordinates:
    row = engine.deploy_flow(flow, actor="test")
    with transaction(engine.sessions) as session:
        execution = engine.create_execution(session, row, engine.flow_of(row), {}, [], actor="test")
    return TaskRunCoordinates(execution.id, task_id, None, None, 1)


def _claim(engine: Engine, at: TaskRunCoordinates) -> ClaimedTaskRun:
    claimed = engine.claim(at, owner="w1", celery_task_id="c1")
    assert claimed is not None
    return claimed


def _row(engine: Engine, task_run_id: str) -> tuple[str, datetime | None, datetime]:
    with read_only(engine.sessions) as session:
        row = store.get_task_run(session, task_run_id)
        assert row is not None
        return row.state, row.retry_at, row.updated_at


@pytest.mark.parametrize("offset", [SKEW, -SKEW], ids=["worker ahead", "worker behind"])
def test_a_retry_is_due_by_the_database_clock_whatever_the_finishing_workers_clock(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, offset: timedelta
) -> None:
    at = _start(engine, RETRY, "flaky")
    claimed = _claim(engine, at)
    _skew(monkeypatch, offset)

    engine.finish(claimed, TaskOutcome(State.FAILED, error="boom"))

    state, retry_at, _ = _row(engine, at.task_run_id)
    assert state == "RETRYING" and retry_at is not None
    assert abs(retry_at - (_db_now(engine) + timedelta(seconds=30))) < SLACK


def _retry_due_in(engine: Engine, execution_id: str, seconds: int) -> None:
    with transaction(engine.sessions) as session:
        session.execute(
            text("UPDATE task_runs SET retry_at = now() + make_interval(secs => :s) WHERE execution_id = :id"),
            {"s": seconds, "id": execution_id},
        )


def test_a_sweeper_whose_clock_is_ahead_does_not_resend_a_retry_before_it_is_due(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, broker_url: str
) -> None:
    at = _start(engine, RETRY, "flaky")
    engine.finish(_claim(engine, at), TaskOutcome(State.FAILED, error="boom"))
    _retry_due_in(engine, at.execution_id, 60)  # due in a minute by the database's clock
    broker = redis.Redis.from_url(broker_url)
    before = broker.llen("control")

    _skew(monkeypatch, SKEW)  # the server's clock says the hour is long past
    assert Sweeper(engine).sweep_once(include_stale=False) == 0
    assert broker.llen("control") == before  # no message a worker's claim would pass over
    broker.close()


def test_a_sweeper_whose_clock_is_behind_resends_a_due_retry_on_time(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = _start(engine, RETRY, "flaky")
    engine.finish(_claim(engine, at), TaskOutcome(State.FAILED, error="boom"))
    _retry_due_in(engine, at.execution_id, -1)  # due a second ago by the database's clock

    _skew(monkeypatch, -SKEW)  # the server's clock says it is an hour away
    assert Sweeper(engine).sweep_once(include_stale=False) == 1


@pytest.mark.parametrize("offset", [SKEW, -SKEW], ids=["ahead", "behind"])
def test_a_state_change_stamps_progress_by_the_database_clock(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, offset: timedelta
) -> None:
    """`updated_at` is what the stale-execution sweep compares with the database's time: a process behind would
    make a live execution look stale at once (re-sent every sweep), one ahead would hide a stalled one."""
    at = _start(engine, LOG, "t")
    claimed = _claim(engine, at)
    _skew(monkeypatch, offset)

    engine.finish(claimed, TaskOutcome(State.SUCCESS))

    state, _, updated_at = _row(engine, at.task_run_id)
    assert state == "SUCCESS"
    assert abs(updated_at - _db_now(engine)) < SLACK
    with read_only(engine.sessions) as session:
        execution = store.get_execution(session, at.execution_id)
        assert execution is not None and abs(execution.updated_at - _db_now(engine)) < SLACK


def test_a_stale_sweep_by_a_clock_behind_does_not_resend_a_live_execution(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, broker_url: str
) -> None:
    _skew(monkeypatch, -SKEW)  # the API server that creates it runs an hour behind
    row = engine.deploy_flow(LOG.replace("logged", "created"), actor="test")
    with transaction(engine.sessions) as session:
        engine.create_execution(session, row, engine.flow_of(row), {}, [], actor="test")
    broker = redis.Redis.from_url(broker_url)
    before = broker.llen("control")

    assert Sweeper(engine).sweep_once() == 0  # just created: not stale by the database's clock
    assert broker.llen("control") == before
    broker.close()


@pytest.mark.parametrize("offset", [SKEW, -SKEW], ids=["worker ahead", "worker behind"])
def test_a_sleep_ends_by_the_database_clock(engine: Engine, monkeypatch: pytest.MonkeyPatch, offset: timedelta) -> None:
    at = _start(
        engine, "id: naps\nnamespace: tests.skew\ntasks:\n  - id: nap\n    type: Sleep\n    duration: PT1M\n", "nap"
    )
    claimed = _claim(engine, at)
    _skew(monkeypatch, offset)

    end = sleeps.begin(engine, claimed, timedelta(minutes=1))

    assert end is not None
    assert abs(end.due - (_db_now(engine) + timedelta(minutes=1))) < SLACK
    # What a worker waits for is the time left by the same clock, not `due` minus its own wall clock.
    assert abs((end.due - claimed.clock.now()) - timedelta(minutes=1)) < SLACK


@pytest.mark.parametrize("offset", [SKEW, -SKEW], ids=["worker ahead", "worker behind"])
def test_a_pause_delay_wakes_by_the_database_clock(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, offset: timedelta
) -> None:
    from workers.context import TaskContext
    from workers.control import decide_pause
    from workers.functions import EngineFunctions

    at = _start(engine, PAUSE, "wait")
    claimed = _claim(engine, at)
    _skew(monkeypatch, offset)

    decision = decide_pause(TaskContext(claimed, EngineFunctions(engine, claimed)))

    due = datetime.fromisoformat(str(decision.choice["due"]))
    assert abs(due - (_db_now(engine) + timedelta(minutes=1))) < SLACK


def test_the_claims_clock_runs_on_monotonic_time_from_the_database_reading() -> None:
    reading = datetime(2030, 1, 1, tzinfo=UTC)
    clock = DbClock(reading, taken=time.monotonic() - 5)

    assert timedelta(seconds=5) <= clock.now() - reading < timedelta(seconds=6)


def test_a_claim_carries_the_database_clock(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    _skew(monkeypatch, SKEW)
    claimed = _claim(engine, _start(engine, LOG.replace("logged", "clocked"), "t"))

    assert abs(claimed.clock.now() - _db_now(engine)) < SLACK


MINUTELY = """
id: minutely
namespace: tests.skew
tasks:
  - id: hello
    type: Log
    message: "{{ trigger.date }}"
triggers:
  - id: every-minute
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "* * * * *"
"""


@pytest.mark.parametrize("offset", [SKEW, -SKEW], ids=["leader ahead", "leader behind"])
def test_a_schedule_fires_by_the_database_clock_whatever_the_leaders_clock(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, offset: timedelta
) -> None:
    from orchestrator.store import triggers as store_triggers
    from orchestrator.triggers.scheduler import Scheduler

    engine.deploy_flow(MINUTELY, actor="test")
    _skew(monkeypatch, offset)  # a new leader, on a host an hour off
    assert Scheduler(engine).tick() == []  # first sight of the trigger: its first slot is the next minute

    with read_only(engine.sessions) as session:
        rows = [r for r in store_triggers.triggers_of(session, engine.settings.tenant, "tests.skew")]
        now = store.db_now(session)
    assert len(rows) == 1 and rows[0].next_fire_at is not None
    assert now < rows[0].next_fire_at <= now + timedelta(minutes=1)  # not an hour early or late
