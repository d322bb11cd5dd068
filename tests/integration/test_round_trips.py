"""Round trips per operation: PostgreSQL statements, commits, pool checkouts and Celery messages stay within budget.

Chorus's cost per task run on shared cores is its number of round trips (loadtests/README.md, "Where the time
goes"), so each hot operation has a budget here and a change that adds a statement, a commit or a message to
one fails with the operation's name and its measured count. The budgets are today's counts; lower them when
an operation gets cheaper (they are an upper bound: a cheaper operation passes).

Each operation is driven as the worker drives it (workers/runtime.py), on a real PostgreSQL and a Redis
database no worker consumes, with a warm engine (one execution of the same flow ran first: the flow cache and
prepared statements are what a worker under load has). Messages are those the operation itself publishes;
the next link of a Celery chain, which Celery publishes after a task returns, is not the engine's and is
not counted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from orchestrator.celery_app import RUN_INLINE, RUN_TASK_RUN
from orchestrator.core.plan import Chain
from orchestrator.engine import Engine, SubmitRequest, TaskRunCoordinates, Verdict, WebhookCall
from orchestrator.engine.compiler import chain_rest
from orchestrator.settings import load_settings
from orchestrator.store.database import transaction
from orchestrator.store.tables import ExecutionRow
from orchestrator.triggers.wiring import flows_listener_of
from tests.harness.engines import EngineFactory
from tests.harness.round_trips import Message, RoundTrips, count_round_trips, sql_engine_of
from workers.attempts import LocalRunner, run_claimed

#: Today's counts per operation (measured 2026-12-07 on main d3163ca): the most it may cost. Lower them as
#: operations get cheaper (the lead merges the cuts of several branches here); never raise one without
#: saying why in the commit. A second commit in an operation is the worker's wrong-pool check before a claim
#: (its own short transaction). An end reads no flows version while the flows listener is healthy (perf-notify,
#: on integ 96b1931: run_inline one 10 -> 9, five 22 -> 21, join 7 -> 6 statements, one commit each). A transaction's
#: log lines are written in one statement before it commits (perf-xpool: five-task flows 21 -> 16 driven, 17 inline).
#: An execution's lock statement also locks and reads its audit head (perf-head: every operation that locks an
#: existing execution one statement less: run_inline 9 -> 8, claim 6 -> 5, finish 7 -> 6, join 6 -> 5), and a
#: transaction's audit events and their heads are written in one statement (every writing operation one less),
#: with its log lines (a transaction that logs one less again: run_inline one 9 -> 6, crosspool 23 -> 16). A task run
#: created under the execution's lock by a transaction knowing all its task runs is inserted once, as it ends up, by
#: the commit statement (perf-xpool2, store/pending_runs.py: no INSERT and no UPDATE of its own; driven submits and
#: run_inline of one or five Logs 6/14 -> 4, claim 4 -> 3, crosspool's finish 7 -> 5, crosspool 16 -> 11).
BUDGET: dict[str, dict[str, int]] = {
    # engine.submit of a one-task Log flow: create the execution RUNNING, plan it, send its message.
    "submit": {"statements": 3, "commits": 1, "checkouts": 1, "messages": 1},
    # engine.submit with the API's local runner: the whole one-task (Log) execution in the submit's transaction.
    "submit_driven_one_task": {"statements": 4, "commits": 1, "checkouts": 1, "messages": 0},
    # The same for the five-task Log flow: still one transaction and no message.
    "submit_driven_five_tasks": {"statements": 4, "commits": 1, "checkouts": 1, "messages": 0},
    # The worker's run_inline of that execution's message: claim, run, record the Log, end the execution.
    "run_inline_one_task": {"statements": 4, "commits": 1, "checkouts": 1, "messages": 0},
    # The same for a five-task Log flow: five inline task runs and the end in one transaction.
    "run_inline_five_tasks": {"statements": 4, "commits": 1, "checkouts": 1, "messages": 0},
    # run_task_run of a task on another pool (here the io pool), up to the handler: the claim, which checks the
    # message's queue in its own transaction (perf-xpool: 8 statements and 2 commits -> 6 and 1).
    "claim": {"statements": 3, "commits": 1, "checkouts": 1, "messages": 0},
    # Recording that task run's outcome (engine.finish) after the handler ran, with nothing to drive after it.
    "finish": {"statements": 4, "commits": 1, "checkouts": 1, "messages": 0},
    # join_task_run of the execution after that task run: the end of the execution (a join that still travels,
    # as a chord's callback does).
    "join": {"statements": 4, "commits": 1, "checkouts": 1, "messages": 0},
    # The worker's finish of that task run when its chain's next link is the execution's join: the join runs in
    # the finish's transaction and is taken off the chain (perf-xpool: finish 7 + join 6 statements, 2 commits
    # and a message before).
    "finish_driven_join": {"statements": 5, "commits": 1, "checkouts": 1, "messages": 0},
    # Log -> Log on the io pool -> Log (loadtests' crosspool): the io task run's finish also runs the last Log and
    # the join (perf-xpool: finish 7 + run_inline 9 statements, 2 commits and a message before).
    "finish_driven_crosspool": {"statements": 5, "commits": 1, "checkouts": 1, "messages": 0},
    # The whole crosspool execution: the submit (first Log driven), the io claim, the driving finish. Before
    # perf-xpool: 31 statements, 5 commits, 5 checkouts, 2 messages; before perf-xpool2: 16 statements.
    "crosspool_execution": {"statements": 11, "commits": 3, "checkouts": 3, "messages": 1},
    # POST /executions/{ns}/{id} of a one-task Log flow through the API, alone (its group of one is driven; 6
    # statements before perf-xpool2 wrote its task run once).
    "api_create": {"statements": 4, "commits": 1, "checkouts": 1, "messages": 0},
    # POST /executions/webhook/{ns}/{id}/{key} of a one-task Log flow, alone: the same as an API create
    # (9 statements, 3 commits, 3 checkouts before perf-webhook: a read-only transaction for the trigger's lookup,
    # and the audit middleware's http.post event on the API's one chain in a third; 6 before perf-xpool2).
    "webhook_fire": {"statements": 4, "commits": 1, "checkouts": 1, "messages": 0},
    # engine.submit_many of ten starts of the one-task flow (the API's group commit under load): one revision read
    # per flow, the ten rows in one executemany (psycopg pipelines it: one round trip), the audit of all ten in
    # one statement (perf-webhook: 21 statements before, a revision read and an INSERT per start). Its
    # executions' control work is sent, a message each.
    "submit_group_of_ten": {"statements": 3, "commits": 1, "checkouts": 1, "messages": 10},
    # The same group of ten webhook fires: resolved in the group's transaction, nothing more.
    "webhook_group_of_ten": {"statements": 3, "commits": 1, "checkouts": 1, "messages": 10},
}

NAMESPACE = "tests.round_trips"

#: loadtests' crosspool flow: a Log on the io pool between two Logs.
CROSSPOOL = f"""id: crosspool
namespace: {NAMESPACE}
tasks:
  - {{id: before, type: io.kestra.plugin.core.log.Log, message: before}}
  - {{id: io, type: io.kestra.plugin.core.log.Log, message: on io, workerGroup: {{key: io}}}}
  - {{id: after, type: io.kestra.plugin.core.log.Log, message: after}}
"""


#: loadtests' webhook flow: a Log of the request's body, started by a Webhook trigger.
WEBHOOK = f"""id: hook
namespace: {NAMESPACE}
tasks:
  - id: log
    type: io.kestra.plugin.core.log.Log
    message: "request {{{{ trigger.body.n }}}}"
triggers:
  - id: hook
    type: io.kestra.plugin.core.trigger.Webhook
    key: round-trips-key
"""


def _logs(flow_id: str, count: int, *, pool: str | None = None) -> str:
    group = f"    workerGroup:\n      key: {pool}\n" if pool else ""
    tasks = "".join(
        f"  - id: t{i}\n    type: io.kestra.plugin.core.log.Log\n    message: step {i}\n{group}" for i in range(count)
    )
    return f"id: {flow_id}\nnamespace: {NAMESPACE}\ntasks:\n{tasks}"


def within_budget(operation: str, counted: RoundTrips) -> None:
    """Each count at most its budget; the failure names the operation, the count and every statement."""
    measured = counted.as_counts()
    over = {k: (v, BUDGET[operation][k]) for k, v in measured.items() if v > BUDGET[operation][k]}
    assert not over, (
        f"{operation}: over budget "
        + ", ".join(f"{k} {v} > {budget}" for k, (v, budget) in over.items())
        + f"; measured {counted.describe()}"
    )


@pytest.fixture
def engine(database_url: str, idle_broker_url: str, engine_factory: EngineFactory) -> Engine:
    engine = engine_factory(database_url, broker_url=idle_broker_url)
    for flow in (_logs("one", 1), _logs("five", 5), _logs("io", 1, pool="io"), CROSSPOOL, WEBHOOK):
        engine.deploy_flow(flow, actor="test")
    # As in a process that has run a while: its flows listener hears deploys, so ends read no flows version.
    listener = flows_listener_of(engine)
    assert listener is not None and listener.wait_healthy(timeout_s=10)
    return engine


def _submit(engine: Engine, flow_id: str) -> tuple[str, Message]:
    """Submit an execution; returns its id and the one message it sent (its first link)."""
    with count_round_trips(sql_engine_of(engine)) as counted:
        row = engine.submit(NAMESPACE, flow_id, inputs={}, actor="test")
    [message] = counted.messages
    return row.id, message


def _run_inline(engine: Engine, execution_id: str, message: Message) -> tuple[Verdict, Any, bool]:
    """What the worker's run_inline does with the message: engine.run_inline with the worker's run function."""
    assert message.task == RUN_INLINE, message
    runs = [
        TaskRunCoordinates(execution_id, r["task_id"], r.get("parent_id"), r.get("iteration"), int(r["attempt"]))
        for r in message.kwargs["runs"]
    ]
    return engine.run_inline(
        execution_id,
        runs,
        join=bool(message.kwargs["join"]),
        skip_runs=False,
        owner="round-trips",
        celery_task_id="m-" + execution_id,
        requested_by=None,
        run=lambda claimed: run_claimed(claimed, engine),
    )


def _ended_success(engine: Engine, execution_id: str) -> None:
    with transaction(engine.sessions) as session:
        row = session.get(ExecutionRow, execution_id)
        assert row is not None and row.state == "SUCCESS", row and row.state


def test_a_submit_stays_within_its_budget(engine: Engine) -> None:
    _submit(engine, "one")  # warm
    with count_round_trips(sql_engine_of(engine)) as counted:
        engine.submit(NAMESPACE, "one", inputs={}, actor="test")
    within_budget("submit", counted)
    assert [m.task for m in counted.messages] == [RUN_INLINE]


@pytest.mark.parametrize(
    ("flow_id", "operation"), [("one", "submit_driven_one_task"), ("five", "submit_driven_five_tasks")]
)
def test_a_driven_submit_runs_a_control_execution_in_one_transaction_within_its_budget(
    engine: Engine, flow_id: str, operation: str
) -> None:
    engine.local_runner = LocalRunner()  # as the API's and workers' engines have it
    engine.submit(NAMESPACE, flow_id, inputs={}, actor="test")  # warm
    with count_round_trips(sql_engine_of(engine)) as counted:
        row = engine.submit(NAMESPACE, flow_id, inputs={}, actor="test")
    assert row.state == "SUCCESS"
    _ended_success(engine, row.id)
    within_budget(operation, counted)


@pytest.mark.parametrize(("flow_id", "operation"), [("one", "run_inline_one_task"), ("five", "run_inline_five_tasks")])
def test_an_inline_run_stays_within_its_budget(engine: Engine, flow_id: str, operation: str) -> None:
    _run_inline(engine, *_submit(engine, flow_id))  # warm
    execution_id, message = _submit(engine, flow_id)
    with count_round_trips(sql_engine_of(engine)) as counted:
        verdict, plan, _ = _run_inline(engine, execution_id, message)
    assert (verdict, plan) == (Verdict.STOP, None)  # it joined the execution, which ended: nothing follows
    _ended_success(engine, execution_id)
    within_budget(operation, counted)


def _claim(engine: Engine, at: TaskRunCoordinates) -> Any:
    # The worker's run_task_run: claim, refusing a message on the wrong pool's queue in the same transaction.
    def check_pool(pool: str) -> None:
        assert pool == "io", pool

    return engine.claim(
        at, owner="round-trips", celery_task_id="m-" + at.execution_id, requested_by=None, check_pool=check_pool
    )


def _other_pool_task_run(engine: Engine) -> tuple[RoundTrips, RoundTrips, RoundTrips, str]:
    """Claim, finish and join one execution of the io flow, each counted."""
    execution_id, message = _submit(engine, "io")
    assert (message.task, message.queue) == (RUN_TASK_RUN, "io"), message
    at = TaskRunCoordinates(execution_id, message.kwargs["task_id"], None, None, int(message.kwargs["attempt"]))
    db = sql_engine_of(engine)
    with count_round_trips(db) as claim:
        claimed = _claim(engine, at)
    assert claimed is not None
    outcome = run_claimed(claimed, engine)
    with count_round_trips(db) as finish:
        assert engine.finish(claimed, outcome) == Verdict.OK
    with count_round_trips(db) as join:
        verdict, plan = engine.join(execution_id, None, actor="system:join")
    assert (verdict, plan) == (Verdict.STOP, None)  # the execution ended: nothing follows in Celery
    _ended_success(engine, execution_id)
    return claim, finish, join, execution_id


def test_a_task_run_on_another_pool_claims_finishes_and_joins_within_budget(engine: Engine) -> None:
    _other_pool_task_run(engine)  # warm
    claim, finish, join, _ = _other_pool_task_run(engine)
    for operation, counted in (("claim", claim), ("finish", finish), ("join", join)):
        within_budget(operation, counted)


def test_an_operation_over_budget_fails_naming_it_and_its_count() -> None:
    counted = RoundTrips(statements=["SELECT 1"] * 3, commits=1)
    BUDGET["probe"] = {"statements": 2, "commits": 1, "checkouts": 0, "messages": 0}
    try:
        with pytest.raises(AssertionError, match=r"probe: over budget statements 3 > 2; measured statements=3"):
            within_budget("probe", counted)
        within_budget("probe", RoundTrips(statements=["SELECT 1"] * 2, commits=1))  # at the budget: passes
    finally:
        del BUDGET["probe"]


def _driven_finish(engine: Engine, flow_id: str) -> tuple[RoundTrips, RoundTrips, RoundTrips, str]:
    """Submit (with the workers' local runner), claim the io task run, and finish it as the worker does: with
    its chain's next links (from the submitted message) run in the finish's transaction. Each counted."""
    engine.local_runner = LocalRunner()
    db = sql_engine_of(engine)
    with count_round_trips(db) as submit:
        execution_id = engine.submit(NAMESPACE, flow_id, inputs={}, actor="test").id
    [message] = submit.messages
    assert (message.task, message.queue) == (RUN_TASK_RUN, "io"), message
    at = TaskRunCoordinates(execution_id, message.kwargs["task_id"], None, None, int(message.kwargs["attempt"]))
    with count_round_trips(db) as claim:
        claimed = _claim(engine, at)
    assert claimed is not None
    outcome = run_claimed(claimed, engine)
    links = chain_rest(execution_id, list(reversed(message.chain)))  # what workers.runtime takes off the chain
    assert links, message.chain
    with count_round_trips(db) as finish:
        verdict, rest = engine.finish_and_drive(claimed, outcome, Chain(tuple(n for link in links for n in link)))
    assert (verdict, rest) == (Verdict.STOP, None)  # the execution ended in the finish's transaction
    _ended_success(engine, execution_id)
    return submit, claim, finish, execution_id


@pytest.mark.parametrize(
    ("flow_id", "operation"), [("io", "finish_driven_join"), ("crosspool", "finish_driven_crosspool")]
)
def test_a_finish_runs_the_chains_next_control_work_in_its_transaction_within_budget(
    engine: Engine, flow_id: str, operation: str
) -> None:
    _driven_finish(engine, flow_id)  # warm
    submit, claim, finish, _ = _driven_finish(engine, flow_id)
    within_budget("claim", claim)
    within_budget(operation, finish)
    if flow_id == "crosspool":
        whole = RoundTrips(
            statements=submit.statements + claim.statements + finish.statements,
            commits=submit.commits + claim.commits + finish.commits,
            checkouts=submit.checkouts + claim.checkouts + finish.checkouts,
            messages=submit.messages + claim.messages + finish.messages,
        )
        within_budget("crosspool_execution", whole)


def test_an_api_create_and_a_webhook_fire_cost_the_same_within_budget(database_url: str, idle_broker_url: str) -> None:
    settings = load_settings(database_url=database_url, broker_url=idle_broker_url)
    with TestClient(create_app(settings, sweeper=False), base_url="http://127.0.0.1") as client:
        engine: Engine = client.app.state.engine  # type: ignore[attr-defined]
        for flow in (_logs("one", 1), WEBHOOK):
            engine.deploy_flow(flow, actor="test")
        listener = flows_listener_of(engine)
        assert listener is not None and listener.wait_healthy(timeout_s=10)
        calls: dict[str, Callable[[], Any]] = {
            "api_create": lambda: client.post(f"/api/v1/main/executions/{NAMESPACE}/one"),
            "webhook_fire": lambda: client.post(
                f"/api/v1/main/executions/webhook/{NAMESPACE}/hook/round-trips-key", json={"n": 1}
            ),
        }
        for operation, call in calls.items():
            assert call().status_code == 200  # warm
            with count_round_trips(sql_engine_of(engine)) as counted:
                response = call()
            assert response.status_code == 200, response.text
            assert response.json()["state"]["current"] == "SUCCESS"  # alone, it ran whole in its transaction
            within_budget(operation, counted)


@pytest.mark.parametrize("operation", ["submit_group_of_ten", "webhook_group_of_ten"])
def test_a_group_of_starts_is_one_transaction_within_budget(engine: Engine, operation: str) -> None:
    def group() -> list[SubmitRequest]:
        if operation == "submit_group_of_ten":
            return [SubmitRequest(NAMESPACE, "one", {}, "test") for _ in range(10)]
        call = WebhookCall("round-trips-key", {"body": {"n": 1}, "headers": {}, "parameters": {}})
        return [SubmitRequest(NAMESPACE, "hook", {}, "trigger:webhook@test", webhook=call) for _ in range(10)]

    engine.submit_many(group())  # warm
    with count_round_trips(sql_engine_of(engine)) as counted:
        results = engine.submit_many(group())
    assert [type(r).__name__ for r in results] == ["ExecutionRow"] * 10
    within_budget(operation, counted)
