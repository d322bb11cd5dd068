"""Starts written in groups (`Engine.submit_many`, the API's `SubmitGroups`): one commit for a burst, and
every request its own answer: a bad one fails alone, its neighbours start."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any

import pytest
from sqlalchemy import event

from api.submit_groups import SubmitGroups
from orchestrator import store
from orchestrator.core.errors import InputInvalid, NotFound, WebhookDeclined
from orchestrator.core.states import State
from orchestrator.engine import Engine, SubmitRequest, WebhookCall
from orchestrator.engine.audit_trail import check_chain
from orchestrator.store.database import read_only
from orchestrator.store.errors import IntegrityError
from orchestrator.store.tables import ExecutionRow
from tests.harness.engines import EngineFactory

FLOW = """
id: hello
namespace: tests.groups
inputs:
  - id: n
    type: INT
    required: false
tasks:
  - id: log
    type: io.kestra.plugin.core.log.Log
    message: "n={{ inputs.n }}"
"""

HOOK = """
id: hook
namespace: tests.groups
tasks:
  - id: log
    type: io.kestra.plugin.core.log.Log
    message: "{{ trigger.body.n }}"
triggers:
  - id: hook
    type: io.kestra.plugin.core.trigger.Webhook
    key: right-key
    conditions:
      - type: io.kestra.plugin.core.condition.ExpressionCondition
        expression: "{{ trigger.body.n != 13 }}"
"""

LIMITED = """
id: limited
namespace: tests.groups
concurrency:
  limit: 2
  behavior: QUEUE
tasks:
  - id: log
    type: io.kestra.plugin.core.log.Log
    message: one at a time
"""


@pytest.fixture
def engine(database_url: str, redis_url: str, engine_factory: EngineFactory) -> Engine:
    built = engine_factory(database_url, broker_url=redis_url)
    built.deploy_flow(FLOW, actor="t")
    built.deploy_flow(LIMITED, actor="t")
    built.deploy_flow(HOOK, actor="t")
    return built


def _count_commits(engine: Engine) -> list[int]:
    """Commits that wrote something. A read-only transaction ends with COMMIT too (store.database.read_only), and
    an after-commit reaction may read (the Flow-trigger candidates, when the flows' version moved since they were
    cached, which the flows listener's token does on its own schedule): not part of the group's one write."""
    commits = [0]
    wrote: set[int] = set()
    bind = engine.sessions.kw["bind"]

    @event.listens_for(bind, "before_cursor_execute")
    def statement(conn: Any, _cursor: object, text: str, *_: object) -> None:
        if text.lstrip().split(None, 1)[0].upper() in ("INSERT", "UPDATE", "DELETE"):
            wrote.add(id(conn))

    @event.listens_for(bind, "commit")
    def count(conn: Any) -> None:
        if id(conn) in wrote:
            wrote.discard(id(conn))
            commits[0] += 1

    return commits


def _request(n: object, flow_id: str = "hello") -> SubmitRequest:
    return SubmitRequest("tests.groups", flow_id, {"n": n}, "user:test")


def _audit_actions(engine: Engine, execution_id: str) -> list[str]:
    with read_only(engine.sessions) as session:
        return [e.action for e in store.audit_events(session, execution_id)]


def test_a_group_is_one_commit_and_each_execution_is_audited_as_if_alone(engine: Engine) -> None:
    alone = engine.submit("tests.groups", "hello", inputs={"n": 0}, actor="user:test")
    commits = _count_commits(engine)

    results = engine.submit_many([_request(i) for i in range(1, 11)])

    assert commits[0] == 1
    assert all(isinstance(r, ExecutionRow) for r in results)
    rows = [r for r in results if isinstance(r, ExecutionRow)]
    assert [r.inputs for r in rows] == [{"n": i} for i in range(1, 11)]
    assert len({r.id for r in rows}) == 10
    assert {r.state for r in rows} == {str(State.RUNNING)}
    for row in rows:
        assert _audit_actions(engine, row.id) == _audit_actions(engine, alone.id)


def test_a_bad_request_fails_alone_and_its_neighbours_start(engine: Engine) -> None:
    requests = [_request(1), _request("not a number"), SubmitRequest("tests.groups", "nosuch", {}, "t"), _request(4)]
    commits = _count_commits(engine)

    results = engine.submit_many(requests)

    assert commits[0] == 1  # refused before writing anything: the group is not submitted again one by one
    assert isinstance(results[0], ExecutionRow) and isinstance(results[3], ExecutionRow)
    assert isinstance(results[1], InputInvalid)
    assert isinstance(results[2], NotFound)
    with read_only(engine.sessions) as session:
        for result in (results[0], results[3]):
            assert isinstance(result, ExecutionRow)
            stored = store.get_execution(session, result.id)
            assert stored is not None and stored.state == str(State.RUNNING)
            assert [e.action for e in store.audit_events(session, result.id)][:2] == [
                "execution.created",
                "execution.running",
            ]


def test_concurrency_admission_counts_the_executions_of_its_own_group(engine: Engine) -> None:
    results = engine.submit_many([_request(None, "limited") for _ in range(5)])

    states = [r.state for r in results if isinstance(r, ExecutionRow)]
    assert states == [str(State.RUNNING)] * 2 + [str(State.QUEUED)] * 3


def test_the_api_groups_concurrent_starts_and_answers_each(engine: Engine) -> None:
    calls: list[int] = []
    lock = threading.Lock()

    def submit_many(requests: Sequence[SubmitRequest]) -> list[ExecutionRow | Exception]:
        with lock:
            calls.append(len(requests))
        return engine.submit_many(requests)

    groups = SubmitGroups(submit_many, max_group=16, in_flight=1)

    async def burst() -> list[ExecutionRow | BaseException]:
        starts = [groups.submit(_request(i if i != 7 else "seven")) for i in range(40)]
        return await asyncio.gather(*starts, return_exceptions=True)

    answers = asyncio.run(burst())

    assert isinstance(answers[7], InputInvalid)
    started = [a for i, a in enumerate(answers) if i != 7]
    assert all(isinstance(a, ExecutionRow) for a in started)
    assert [a.inputs["n"] for a in started if isinstance(a, ExecutionRow)] == [i for i in range(40) if i != 7]
    assert sum(calls) == 40
    assert len(calls) < 40 and max(calls) <= 16  # grouped, never beyond the bound
    assert calls[0] == 1  # a lone first request goes at once, waiting for nobody


def test_a_failing_group_writer_fails_every_waiting_request_and_the_next_group_still_runs(engine: Engine) -> None:
    failing = [True]

    def submit_many(requests: Sequence[SubmitRequest]) -> list[ExecutionRow | Exception]:
        if failing[0]:
            failing[0] = False
            raise ConnectionError("database went away")
        return engine.submit_many(requests)

    groups = SubmitGroups(submit_many, in_flight=1)

    async def two() -> tuple[BaseException | ExecutionRow, ExecutionRow]:
        first = await asyncio.gather(groups.submit(_request(1)), return_exceptions=True)
        second = await groups.submit(_request(2))
        return first[0], second

    first, second = asyncio.run(two())

    assert isinstance(first, ConnectionError)
    assert second.inputs == {"n": 2}


def _fire(n: int, key: str = "right-key") -> SubmitRequest:
    call = WebhookCall(key, {"body": {"n": n}, "headers": {}, "parameters": {}})
    return SubmitRequest("tests.groups", "hook", {}, "trigger:webhook@test", webhook=call)


def _executions_of(engine: Engine, flow_id: str) -> list[ExecutionRow]:
    with read_only(engine.sessions) as session:
        return list(
            session.query(ExecutionRow).filter_by(namespace="tests.groups", flow_id=flow_id).order_by(ExecutionRow.id)
        )


def test_webhook_fires_in_a_group_each_get_their_answer_in_one_commit(engine: Engine) -> None:
    commits = _count_commits(engine)

    results = engine.submit_many([_fire(1), _fire(2, key="wrong-key"), _fire(13), _fire(4), _request(5)])

    assert commits[0] == 1
    assert isinstance(results[1], NotFound) and results[1].kind == "webhook"  # a wrong key: the same 404 as no flow
    assert isinstance(results[2], WebhookDeclined)  # its conditions refuse it: nothing starts (Kestra's 204)
    started = [r for r in (results[0], results[3], results[4]) if isinstance(r, ExecutionRow)]
    assert len(started) == 3
    assert [r.trigger["variables"]["body"]["n"] for r in started[:2] if r.trigger] == [1, 4]
    assert {r.trigger["id"] for r in started[:2] if r.trigger} == {"hook"}
    assert sorted(r.trigger["variables"]["body"]["n"] for r in _executions_of(engine, "hook") if r.trigger) == [1, 4]


def test_a_flow_deleted_before_its_group_is_written_fails_its_requests_alone(engine: Engine) -> None:
    requests = [_request(1), _fire(2), _request(3), _fire(4)]
    engine.delete_flow("tests.groups", "hook", actor="t")  # after the fires were accepted, before their group runs
    commits = _count_commits(engine)

    results = engine.submit_many(requests)

    assert commits[0] == 1
    assert isinstance(results[1], NotFound) and isinstance(results[3], NotFound)
    assert results[1].kind == "webhook"  # a deleted flow answers as a wrong key: nothing to probe
    assert all(isinstance(results[i], ExecutionRow) for i in (0, 2))
    assert _executions_of(engine, "hook") == []


def test_a_group_whose_write_fails_leaves_nothing_half_written_and_answers_each_alone(engine: Engine) -> None:
    taken = engine.submit("tests.groups", "hello", inputs={"n": 0}, actor="user:test")
    duplicate = SubmitRequest("tests.groups", "hello", {"n": 2}, "user:test", execution_id=taken.id)
    limited = [_request(None, "limited") for _ in range(4)]
    commits = _count_commits(engine)

    # The duplicate id passes every check and fails at its INSERT: the group's transaction rolls back whole.
    results = engine.submit_many([_request(1), duplicate, *limited])

    assert isinstance(results[1], IntegrityError)
    assert isinstance(results[0], ExecutionRow)
    assert commits[0] == 5  # the rolled-back group, then each of the five good ones alone
    hello = _executions_of(engine, "hello")
    assert sorted(int(r.inputs["n"]) for r in hello) == [0, 1]  # nothing of the first attempt remains
    # Concurrency admission counted only what committed: exactly the limit runs, the rest queue.
    states = sorted(r.state for r in _executions_of(engine, "limited"))
    assert states == sorted([str(State.RUNNING)] * 2 + [str(State.QUEUED)] * 2)


def test_plain_starts_written_at_the_groups_end_leave_admission_of_a_limited_flow_exact(engine: Engine) -> None:
    # hello's starts (no concurrency limit) are written in one multi-row INSERT at the group's end; limited's are
    # counted under its lock as they come, each seeing the limited starts before it.
    requests = [_request(1), _request(None, "limited"), _request(2), _request(None, "limited"), _request(3)]
    requests += [_request(None, "limited"), _request(4)]

    results = engine.submit_many(requests)

    assert all(isinstance(r, ExecutionRow) for r in results)
    hello = _executions_of(engine, "hello")
    assert sorted(int(r.inputs["n"]) for r in hello) == [1, 2, 3, 4]
    assert {r.state for r in hello} == {str(State.RUNNING)}
    limited = sorted(r.state for r in _executions_of(engine, "limited"))
    assert limited == sorted([str(State.RUNNING)] * 2 + [str(State.QUEUED)])
    for row in hello:  # each written once, its audit chain as a start alone writes it, and it verifies
        assert _audit_actions(engine, row.id)[:2] == ["execution.created", "execution.running"]
        with read_only(engine.sessions) as session:
            assert check_chain(row.id, list(store.audit_events(session, row.id))).broken is None


def test_a_lone_refused_start_fails_with_its_error_and_keeps_the_connections_prepared_statements(
    engine: Engine,
) -> None:
    rollbacks: list[object] = []
    event.listen(engine.sessions.kw["bind"], "rollback", rollbacks.append)

    declined = engine.submit_many([_fire(13)])
    bad_input = engine.submit_many([_request("not a number")])

    assert isinstance(declined[0], WebhookDeclined) and declined[0].properties["key"] == "right-key"
    assert isinstance(bad_input[0], InputInvalid)
    # Nothing was written, so the transaction commits: psycopg forgets a connection's prepared statements on ROLLBACK.
    assert rollbacks == []
    assert _executions_of(engine, "hook") == []
