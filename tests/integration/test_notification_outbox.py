"""The notification outbox on a real PostgreSQL and a real HTTP receiver: written with the task run's success,
sent after the commit with the task run's key, re-sent by the sweeper only while not recorded as sent."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError
from sqlalchemy import select, text

from orchestrator.core.ids import idempotency_key, new_id, task_run_id
from orchestrator.engine import ClaimedTaskRun, Engine, TaskOutcome, TaskRunCoordinates, flows, notification_outbox
from orchestrator.engine.sweeper import Sweeper
from orchestrator.settings import Settings
from orchestrator.store import notification_outbox as outbox
from orchestrator.store.database import transaction
from orchestrator.store.tables import AuditEventRow
from tests.fakes.base import FakeResponse
from tests.fakes.webhook import WebhookReceiver
from tests.harness.engines import EngineFactory
from workers.runtime import run_claimed

NS = "company.notify"


class Crash(BaseException):
    """A worker dying mid-message (BaseException: not a task failure)."""


@pytest.fixture
def engine(database_url: str, idle_broker_url: str, engine_factory: EngineFactory) -> Engine:
    return engine_factory(database_url, broker_url=idle_broker_url, pool_size=4)


def _deploy(engine: Engine, url: str) -> str:
    flow_id = f"n{uuid.uuid4().hex[:8]}"
    engine.deploy_flow(
        f"id: {flow_id}\nnamespace: {NS}\ntasks:\n  - id: notify\n"
        "    type: io.kestra.plugin.notifications.slack.SlackIncomingWebhook\n"
        f"    url: {url}\n    messageText: 'run {{{{ execution.id }}}}'\n",
        actor="test",
    )
    return flow_id


def _start(engine: Engine, flow_id: str) -> str:
    with transaction(engine.sessions) as session:
        row = flows.live_revision(engine, session, NS, flow_id, None)
        return engine.create_execution(session, row, engine.flow_of(row), {}, [], actor="test").id


def _run(engine: Engine, execution_id: str, *, crash_before_commit: bool = False) -> None:
    """What a worker does with the notification's message (`run_inline`, as for the events' Publish)."""

    def run(claimed: ClaimedTaskRun) -> TaskOutcome:
        outcome = run_claimed(claimed, engine)
        if crash_before_commit:
            raise Crash  # the worker dies after the task body ran, before its success commits
        return outcome

    engine.run_inline(
        execution_id,
        [TaskRunCoordinates(execution_id, "notify", None, None, 1)],
        join=True, skip_runs=False, owner="w1", celery_task_id="m1", requested_by=None, run=run,
    )  # fmt: skip


def _rows(engine: Engine, execution_id: str) -> list[tuple[object, ...]]:
    with engine.sessions() as session:
        rows = session.execute(
            text("SELECT status, sends, url, body, response_code FROM notification_outbox WHERE execution_id = :id"),
            {"id": execution_id},
        )
        return [tuple(r) for r in rows]


def _make_due(engine: Engine) -> None:
    """As if the lease (or the backoff) had run out."""
    with transaction(engine.sessions) as session:
        session.execute(text("UPDATE notification_outbox SET due_at = now() - interval '1 second'"))


def _audit(engine: Engine, execution_id: str) -> list[tuple[str, dict[str, object]]]:
    with engine.sessions() as session:
        rows = session.execute(
            select(AuditEventRow.action, AuditEventRow.payload)
            .where(AuditEventRow.chain_key == execution_id, AuditEventRow.action.like("notification.%"))
            .order_by(AuditEventRow.seq)
        )
        return [(r[0], r[1]) for r in rows]


def _sweep(engine: Engine) -> None:
    """One sweep, and the notification redelivery it kicks off (in a thread of its own) to its end."""
    sweeper = Sweeper(engine)
    sweeper.sweep_once()
    sweeper.outbox.join(timeout_s=30)


def _key(execution_id: str) -> str:
    return idempotency_key(task_run_id(execution_id, "notify", None, None))


def test_a_notification_is_sent_once_its_task_runs_success_commits_with_the_task_runs_key(
    engine: Engine, webhook_receiver: WebhookReceiver
) -> None:
    path = f"/hooks/{uuid.uuid4().hex}"
    execution_id = _start(engine, _deploy(engine, webhook_receiver.script(path, FakeResponse.of_text("ok"))))

    _run(engine, execution_id)

    [request] = webhook_receiver.received(path)
    assert request.headers["idempotency-key"] == _key(execution_id)
    assert request.json() == {"text": f"run {execution_id}"}
    assert _rows(engine, execution_id) == [("SENT", 1, "", None, 200)]
    [(action, payload)] = _audit(engine, execution_id)
    assert action == "notification.sent"
    assert payload["idempotency_key"] == _key(execution_id) and payload["target"] == webhook_receiver.url


def test_a_worker_dying_before_the_success_commits_sends_nothing_and_its_redelivery_sends_once(
    engine: Engine, webhook_receiver: WebhookReceiver
) -> None:
    path = f"/hooks/{uuid.uuid4().hex}"
    execution_id = _start(engine, _deploy(engine, webhook_receiver.script(path, FakeResponse.of_text("ok"))))

    with pytest.raises(Crash):
        _run(engine, execution_id, crash_before_commit=True)
    assert webhook_receiver.received(path) == [] and _rows(engine, execution_id) == []

    _run(engine, execution_id)  # the broker delivers the unacknowledged message again
    _run(engine, execution_id)  # and once more, after it was done

    assert [r.headers["idempotency-key"] for r in webhook_receiver.received(path)] == [_key(execution_id)]


def test_a_sender_dying_after_the_commit_leaves_the_request_to_the_sweeper_once_its_lease_ran_out(
    engine: Engine, webhook_receiver: WebhookReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = f"/hooks/{uuid.uuid4().hex}"
    execution_id = _start(engine, _deploy(engine, webhook_receiver.script(path, FakeResponse.of_text("ok"))))

    def die(engine: Engine, entry: object) -> None:
        raise Crash

    monkeypatch.setattr(notification_outbox, "deliver", die)
    with pytest.raises(Crash):
        _run(engine, execution_id)
    monkeypatch.undo()
    _sweep(engine)  # the lease still runs: the sweeper leaves a live sender alone
    assert webhook_receiver.received(path) == [] and _rows(engine, execution_id)[0][0] == "PENDING"

    _make_due(engine)
    _sweep(engine)
    _make_due(engine)
    _sweep(engine)  # a SENT row is never sent again

    assert [r.headers["idempotency-key"] for r in webhook_receiver.received(path)] == [_key(execution_id)]
    assert _rows(engine, execution_id) == [("SENT", 1, "", None, 200)]


def test_a_server_error_is_sent_again_with_the_same_key_until_it_is_delivered(
    engine: Engine, webhook_receiver: WebhookReceiver
) -> None:
    path = f"/hooks/{uuid.uuid4().hex}"
    url = webhook_receiver.script(path, FakeResponse.of_text("busy", 503), FakeResponse.of_text("ok"))
    execution_id = _start(engine, _deploy(engine, url))

    _run(engine, execution_id)
    [(status, sends, _, _, code)] = _rows(engine, execution_id)
    assert (status, sends, code) == ("PENDING", 1, 503)
    _make_due(engine)
    _sweep(engine)

    assert [r.headers["idempotency-key"] for r in webhook_receiver.received(path)] == [_key(execution_id)] * 2
    assert _rows(engine, execution_id) == [("SENT", 2, "", None, 200)]


def test_a_client_error_fails_the_notification_for_good_audited_and_erased(
    engine: Engine, webhook_receiver: WebhookReceiver
) -> None:
    path = f"/hooks/{uuid.uuid4().hex}"
    execution_id = _start(engine, _deploy(engine, webhook_receiver.script(path, FakeResponse.of_text("no_team", 404))))

    _run(engine, execution_id)
    _make_due(engine)
    _sweep(engine)

    assert len(webhook_receiver.received(path)) == 1
    assert _rows(engine, execution_id) == [("FAILED", 1, "", None, 404)]
    [(action, payload)] = _audit(engine, execution_id)
    assert action == "notification.failed"
    assert payload["code"] == 404 and "HTTP 404" in str(payload["error"]) and "no_team" in str(payload["error"])


def test_a_url_that_could_never_be_sent_fails_the_task_and_records_nothing(
    engine: Engine, webhook_receiver: WebhookReceiver
) -> None:
    execution_id = _start(engine, _deploy(engine, "ftp://example.com/hook"))

    _run(engine, execution_id)

    assert _rows(engine, execution_id) == []
    with engine.sessions() as session:
        state = session.scalar(text("SELECT state FROM task_runs WHERE execution_id = :id"), {"id": execution_id})
    assert state == "FAILED"


def _entry(execution_id: str, n: int, created_at: datetime) -> outbox.OutboxEntry:
    return outbox.OutboxEntry(
        id=new_id(), tenant="main", idempotency_key=f"{execution_id}-{n}", execution_id=execution_id,
        task_run_id=f"{execution_id}-notify-{n}", task_id="notify", kind="SlackIncomingWebhook", method="POST",
        url="https://hooks.example/secret", target="https://hooks.example", headers={}, body=b"{}",
        connect_timeout_s=1.0, read_timeout_s=1.0, status=outbox.PENDING, sends=0, due_at=created_at,
        created_at=created_at,
    )  # fmt: skip


def _seed(engine: Engine, execution_id: str, *ended: tuple[str | None, timedelta]) -> None:
    """One row per (status, age): ended (SENT or FAILED) that long ago, or still PENDING (None) since then."""
    now = datetime.now(UTC)
    with transaction(engine.sessions) as session:
        for n, (status, age) in enumerate(ended):
            entry = _entry(execution_id, n, now - age)
            assert outbox.insert_entry(session, entry)
            if status is not None:
                outbox.end_entry(session, entry.id, status, now - age, 200, None)


def _statuses(engine: Engine, execution_id: str) -> list[tuple[str, int]]:
    with engine.sessions() as session:
        rows = session.execute(
            text(
                "SELECT status, round(extract(epoch FROM now() - created_at) / 86400)::int FROM notification_outbox "
                "WHERE execution_id = :id ORDER BY created_at"
            ),
            {"id": execution_id},
        )
        return [(r[0], r[1]) for r in rows]


def test_the_sweeper_purges_notifications_ended_past_their_retention_and_keeps_pending_ones(
    database_url: str, idle_broker_url: str, engine_factory: EngineFactory
) -> None:
    engine = engine_factory(database_url, broker_url=idle_broker_url, notification_retention_days=3)
    execution_id = new_id()
    _seed(
        engine,
        execution_id,
        (outbox.SENT, timedelta(days=9)),
        (None, timedelta(days=8)),  # still owed, however old: never deleted
        (outbox.FAILED, timedelta(days=4)),
        (outbox.SENT, timedelta(days=2)),  # within the 3 days
    )

    _sweep(engine)

    assert _statuses(engine, execution_id) == [(outbox.PENDING, 8), (outbox.SENT, 2)]


def test_the_purge_deletes_in_batches_and_leaves_what_its_batches_did_not_reach_to_the_next_one(
    database_url: str, idle_broker_url: str, engine_factory: EngineFactory
) -> None:
    engine = engine_factory(database_url, broker_url=idle_broker_url)  # the default retention: 7 days
    execution_id = new_id()
    _seed(engine, execution_id, *[(outbox.SENT, timedelta(days=8 + n)) for n in range(5)], (outbox.SENT, timedelta(6)))

    first = notification_outbox.purge_ended(engine, batch=2, most_batches=2)
    after_first = _statuses(engine, execution_id)
    second = notification_outbox.purge_ended(engine, batch=2, most_batches=2)

    assert first == 4 and len(after_first) == 2
    assert second == 1 and _statuses(engine, execution_id) == [(outbox.SENT, 6)]


def test_a_retention_that_is_not_positive_is_refused_at_start() -> None:
    with pytest.raises(ValidationError, match="notification_retention_days"):
        Settings(notification_retention_days=0)
