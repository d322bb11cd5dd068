"""Events between flows on a real PostgreSQL: Publish writes the outbox in its task run's transaction, and
Event triggers fire once per (event, trigger) whatever the redeliveries (the examples/choreography flows)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import select, text

from orchestrator.core.errors import FlowInvalid
from orchestrator.core.states import State
from orchestrator.engine import ClaimedTaskRun, Engine, TaskOutcome, TaskRunCoordinates, events, flows
from orchestrator.engine.sweeper import Sweeper
from orchestrator.store.database import transaction
from orchestrator.store.tables import AuditEventRow, ExecutionRow, TaskRunRow
from tests.harness.engines import EngineFactory
from workers.runtime import run_claimed

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "choreography"
NS = "company.helpdesk"


class Crash(BaseException):
    """A worker dying mid-message (BaseException: not a task failure)."""


@pytest.fixture
def engine(database_url: str, idle_broker_url: str, engine_factory: EngineFactory) -> Engine:
    engine = engine_factory(database_url, broker_url=idle_broker_url, pool_size=4)
    for name in ("triage", "billing", "support"):
        engine.deploy_flow((EXAMPLES / f"{name}.yaml").read_text(), actor="test")
    return engine


def _triage(engine: Engine, text_: str, *, crash_after_publish: bool = False, execution_id: str | None = None) -> str:
    if execution_id is None:
        with transaction(engine.sessions) as session:
            row = flows.live_revision(engine, session, NS, "triage", None)
            flow = engine.flow_of(row)
            execution_id = engine.create_execution(
                session, row, flow, {"ticket": "T-1", "text": text_}, [], actor="test"
            ).id

    def run(claimed: ClaimedTaskRun) -> TaskOutcome:
        outcome = run_claimed(claimed, engine)
        if crash_after_publish and claimed.task.id == "announce":
            raise Crash  # the worker dies after running Publish, before its transaction commits
        return outcome

    runs = [TaskRunCoordinates(execution_id, t, None, None, 1) for t in ("classify", "announce")]
    engine.run_inline(
        execution_id, runs, join=True, skip_runs=False, owner="w1", celery_task_id="m1", requested_by=None, run=run
    )
    return execution_id


def _started(engine: Engine, flow_id: str) -> list[ExecutionRow]:
    with engine.sessions() as session:
        return list(session.scalars(select(ExecutionRow).where(ExecutionRow.flow_id == flow_id)).all())


def _event_ids(engine: Engine) -> list[str]:
    with engine.sessions() as session:
        return list(session.scalars(text("SELECT id FROM events")).all())


def _actions(engine: Engine, chain_key: str) -> list[str]:
    with engine.sessions() as session:
        return list(session.scalars(select(AuditEventRow.action).where(AuditEventRow.chain_key == chain_key)).all())


def test_a_published_event_starts_only_the_subscriber_of_its_kind_with_the_publisher_in_trigger(
    engine: Engine,
) -> None:
    publisher = _triage(engine, "please refund my invoice")

    [billing] = _started(engine, "billing")
    assert _started(engine, "support") == []
    assert billing.inputs == {"ticket": "T-1"}
    assert billing.trigger is not None and billing.trigger["type"] == "io.chorus.trigger.Event"
    variables = billing.trigger["variables"]
    assert variables["event"] == "ticket.classified"
    assert variables["payload"]["kind"] == "billing"
    assert variables["publisher"] == {
        "executionId": publisher,
        "namespace": NS,
        "flowId": "triage",
        "taskId": "announce",
        "taskRunId": variables["publisher"]["taskRunId"],
    }
    assert "event.published" in _actions(engine, publisher)
    assert "trigger.fired" in _actions(engine, f"flow:main/{NS}/billing")


def test_an_event_delivered_twice_and_concurrently_fires_each_subscriber_once(engine: Engine) -> None:
    _triage(engine, "the app crashes")
    [event_id] = _event_ids(engine)
    with transaction(engine.sessions) as session:  # as if delivery had never been recorded
        session.execute(text("UPDATE events SET delivered_at = NULL"))
    threads = [threading.Thread(target=events.deliver, args=(engine, event_id)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    events.deliver(engine, event_id)

    assert len(_started(engine, "support")) == 1
    assert _started(engine, "billing") == []


def test_a_worker_killed_between_publish_and_commit_publishes_once_on_redelivery(engine: Engine) -> None:
    with transaction(engine.sessions) as session:
        row = flows.live_revision(engine, session, NS, "triage", None)
        inputs = {"ticket": "T-1", "text": "refund please"}
        execution_id = engine.create_execution(session, row, engine.flow_of(row), inputs, [], actor="test").id
    with pytest.raises(Crash):
        _triage(engine, "", crash_after_publish=True, execution_id=execution_id)
    assert _event_ids(engine) == []
    assert _started(engine, "billing") == []

    _triage(engine, "", execution_id=execution_id)  # the broker delivers the unacknowledged message again
    _triage(engine, "", execution_id=execution_id)  # and once more, after it was done

    assert len(_event_ids(engine)) == 1
    assert len(_started(engine, "billing")) == 1


def test_a_process_dying_between_commit_and_delivery_loses_nothing(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    def die(engine: Engine, event_id: str) -> list[str]:
        raise Crash

    monkeypatch.setattr(events, "deliver", die)
    with pytest.raises(Crash):
        _triage(engine, "refund please")
    monkeypatch.undo()
    assert _started(engine, "billing") == []
    with transaction(engine.sessions) as session:  # older than the sweeper's grace period
        session.execute(text("UPDATE events SET created_at = created_at - interval '1 minute'"))

    Sweeper(engine).sweep_once()
    Sweeper(engine).sweep_once()

    assert len(_started(engine, "billing")) == 1
    with engine.sessions() as session:
        assert session.scalar(text("SELECT count(*) FROM events WHERE delivered_at IS NULL")) == 0


def test_another_namespace_hears_an_event_only_when_the_publisher_grants_it(
    database_url: str, idle_broker_url: str, engine: Engine, engine_factory: EngineFactory
) -> None:
    outsider = (EXAMPLES / "billing.yaml").read_text().replace(f"namespace: {NS}", "namespace: finance")
    engine.deploy_flow(outsider, actor="test")
    _triage(engine, "invoice twice")
    assert [e.namespace for e in _started(engine, "billing")] == [NS]

    grants = {NS: [{"namespace": "finance", "uses": ["execution.read"]}]}
    granted = engine_factory(database_url, broker_url=idle_broker_url, pool_size=4, namespace_access=grants)
    _triage(granted, "invoice again")
    assert sorted(e.namespace for e in _started(engine, "billing")) == [NS, NS, "finance"]


def test_a_subscriber_whose_inputs_cannot_be_rendered_gets_a_failed_execution(engine: Engine) -> None:
    source = (EXAMPLES / "support.yaml").read_text()
    broken = source.replace("trigger.payload.ticket }}", "trigger.payload.missing.deeper }}")
    engine.deploy_flow(broken, actor="test")
    _triage(engine, "it is broken")

    [support] = _started(engine, "support")
    assert support.state == str(State.FAILED)


def test_publish_with_an_expression_as_event_name_is_refused_at_deploy(engine: Engine) -> None:
    flow = "id: bad\nnamespace: a\ntasks:\n  - id: p\n    type: io.chorus.event.Publish\n    event: '{{ inputs.x }}'\n"
    with pytest.raises(FlowInvalid) as caught:
        engine.deploy_flow(flow, actor="test")
    assert [d.path for d in caught.value.errors] == ["tasks[0].event"]


def test_an_event_trigger_without_an_event_is_refused_at_deploy(engine: Engine) -> None:
    flow = (
        "id: bad\nnamespace: a\ntasks:\n  - id: l\n    type: Log\n    message: x\n"
        "triggers:\n  - id: t\n    type: io.chorus.trigger.Event\n"
    )
    with pytest.raises(FlowInvalid) as caught:
        engine.deploy_flow(flow, actor="test")
    assert [d.path for d in caught.value.errors] == ["triggers[0].event"]


def test_a_payload_over_the_limit_fails_the_publish_task_and_publishes_nothing(engine: Engine) -> None:
    source = (EXAMPLES / "triage.yaml").read_text()
    engine.deploy_flow(
        source.replace('text: "{{ inputs.text }}"', 'text: "{{ inputs.text }}{{ inputs.text }}"'), actor="t"
    )

    execution_id = _triage(engine, "refund " + "x" * 140_000)

    with engine.sessions() as session:
        announce = session.get(TaskRunRow, TaskRunCoordinates(execution_id, "announce", None, None, 1).task_run_id)
        assert announce is not None and announce.state == str(State.FAILED)
    assert _event_ids(engine) == []
    assert _started(engine, "billing") == []
