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
from orchestrator.core.errors import InputInvalid, NotFound
from orchestrator.core.states import State
from orchestrator.engine import Engine, SubmitRequest
from orchestrator.store.database import read_only
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

    results = engine.submit_many(requests)

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
