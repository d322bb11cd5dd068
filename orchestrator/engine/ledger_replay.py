"""Replay from the ledger: a replay whose model and agent tool calls are served from the original's records.

A ledger replay is an ordinary replay (`operations.replay`) plus a `ledger_replays` row naming the execution
it is served from and, optionally, the task from which it goes live. Each task run of the replay has a twin
in the original: the same task ids and iterations down the same parents, so the same derived id
(`core.ids.task_run_id`) computed in the original execution. While a task run is served (its task comes
before `live_from` in the flow's order, or there is no `live_from`):

- a model call (ChatCompletion, an AIAgent's turns) answers from the twin's recorded call to the same
  request (same request hash); no recorded answer fails the task run, it never calls the provider;
- an AIAgent's tool call (a child task run of the agent) ends with its twin's outputs, without running.

Everything else runs again as in any replay: pure control tasks give the same results, while scripts,
HTTP requests and notifications are live (a ledger holds model and tool calls only; see the README).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from orchestrator import store
from orchestrator.core.errors import ChorusError, NotFound
from orchestrator.core.flow import Flow
from orchestrator.core.ids import task_run_id
from orchestrator.core.states import State
from orchestrator.engine.values import TaskRunCoordinates
from orchestrator.store import ledger_replay as store_ledger_replay
from orchestrator.store import llm as store_llm
from orchestrator.store import llm_budget as store_llm_budget
from orchestrator.store.database import Session, read_only, sessionmaker
from orchestrator.store.tables import TaskRunRow

#: `mode` values of a replay: Kestra's (everything runs again) and Chorus's ledger replay.
MODES = ("ledger",)
#: How far up a chain of replays of replays an answer is looked for.
_MAX_HOPS = 32


class ReplayInvalid(ChorusError):
    """Raised when a replay's ledger options cannot be used (an unknown mode, a `liveFrom` the flow lacks)."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        super().__init__(f"{path}: {message}")


def check_live_from(flow: Flow, live_from: str | None) -> None:
    """`live_from` must name a task of the flow (at any depth)."""
    if live_from is None:
        return
    try:
        flow.task(live_from)
    except KeyError:
        known = ", ".join(t.id for t in flow.iter_tasks())
        where = f"flow {flow.namespace}.{flow.id}"
        raise ReplayInvalid("liveFrom", f"{where} has no task '{live_from}' (its tasks: {known})") from None


def is_live(flow: Flow, task_id: str, live_from: str | None) -> bool:
    """Whether `task_id` runs live: it is `live_from` or comes after it in the flow's order (depth-first, YAML)."""
    if live_from is None:
        return False
    order = [t.id for t in flow.iter_tasks()]
    if live_from not in order or task_id not in order:
        return True  # a task the flow no longer has: never serve what cannot be matched
    return order.index(task_id) >= order.index(live_from)


@dataclass(frozen=True)
class Served:
    """A task run of a ledger replay that is served from its twin in the original execution."""

    source_execution_id: str
    source_task_run_id: str


@dataclass(frozen=True)
class RecordedAnswer:
    """A recorded call serving a replay: its answer, how long it took, where and when it was made."""

    call_id: int
    body: dict[str, Any]
    latency_ms: float
    execution_id: str
    task_run_id: str
    at: datetime


def twin_id(session: Session, at: TaskRunCoordinates, source_execution_id: str) -> str:
    """The id the task run at `at` has in the source execution: the same task ids and iterations down its parents."""
    chain: list[tuple[str, int | None]] = [(at.task_id, at.iteration)]
    parent_id = at.parent_id
    while parent_id is not None:
        parent = store.get_task_run(session, parent_id)
        if parent is None:
            break
        chain.append((parent.task_id, parent.iteration))
        parent_id = parent.parent_id
    twin: str | None = None
    for task_id, iteration in reversed(chain):
        twin = task_run_id(source_execution_id, task_id, twin, iteration)
    assert twin is not None
    return twin


class LedgerReplays:
    """What a worker asks of a ledger replay: is this task run served, and what did the original record."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def served(self, at: TaskRunCoordinates, flow: Flow) -> Served | None:
        """The twin serving this task run, or None when it runs live (or its execution is no ledger replay)."""
        with read_only(self._sessions) as session:
            replay = store_ledger_replay.ledger_replay_of(session, at.execution_id)
            if replay is None or is_live(flow, at.task_id, replay.live_from):
                return None
            return Served(replay.source_execution_id, twin_id(session, at, replay.source_execution_id))

    def recorded_answer(self, served: Served, request_hash: str) -> RecordedAnswer | None:
        """The twin's recorded successful answer to this exact request.

        A twin that is itself a replay's (served from the ledger, or a task run a replay copied) recorded no
        call: its own original's twin did, so the search goes up the replay chain.
        """
        execution_id, twin = served.source_execution_id, served.source_task_run_id
        with read_only(self._sessions) as session:
            for _ in range(_MAX_HOPS):
                found = store_llm.recorded_response(session, twin, request_hash)
                if found is not None:
                    call_id, body = found
                    call = store_llm.call_by_id(session, call_id)
                    assert call is not None  # just found
                    return RecordedAnswer(call_id, body, call.latency_ms, call.execution_id, twin, call.at)
                row = store.get_execution(session, execution_id)
                run = store.get_task_run(session, twin)
                if (
                    row is None
                    or run is None
                    or row.parent_execution_id is None
                    or row.parent_task_run_id is not None  # a Subflow's child (a retry keeps an originalId too)
                    or row.original_id in (None, row.id)
                ):
                    return None  # no replay: nothing further up
                at = TaskRunCoordinates(execution_id, run.task_id, run.parent_id, run.iteration, run.attempt)
                execution_id = row.parent_execution_id
                twin = twin_id(session, at, execution_id)
        return None

    def usage_when_answered(
        self, answer: RecordedAnswer, kind: str, *, namespace: str, flow_id: str, period_s: float | None
    ) -> tuple[int, float]:
        """Tokens and cost a budget scope of `kind` had spent in the original once `answer` was recorded.

        A served answer costs the replay nothing, so its budget is judged as the original's was after that
        call: a call that overran its budget fails the replay the same way (no verdict depends on where the
        answer came from). Flow and namespace budgets count the period the original call fell in.
        """
        since = None
        if period_s is not None:
            stamp = answer.at.timestamp()
            since = datetime.fromtimestamp(stamp - stamp % period_s, UTC)
        scope = store_llm_budget.BudgetScope(kind, answer.execution_id, answer.task_run_id, namespace, flow_id, since)
        with read_only(self._sessions) as session:
            return store_llm_budget.spent_until(session, scope, answer.call_id)

    def recorded_outputs(self, served: Served) -> tuple[State, dict[str, Any] | None] | None:
        """The twin's final state and outputs (an agent's tool call), or None when the original has no such run."""
        with read_only(self._sessions) as session:
            twin = store.get_task_run(session, served.source_task_run_id)
            if twin is None or twin.execution_id != served.source_execution_id:
                return None
            return State(twin.state), twin.outputs


def serve_subflows(session: Session, flow: Flow, at: TaskRunCoordinates, children: Sequence[str]) -> None:
    """Make the subflow executions a served task run of a ledger replay just started ledger replays too.

    Each child is served from the original's child of the same batch: the twin task run's children (a
    Subflow's one, a ForEachItem's in batch order), or the one its outputs name when it did not wait.
    """
    replay = store_ledger_replay.ledger_replay_of(session, at.execution_id)
    if replay is None or is_live(flow, at.task_id, replay.live_from):
        return
    twin = twin_id(session, at, replay.source_execution_id)
    found = store_ledger_replay.child_executions(session, replay.source_execution_id)
    originals = [child for child, task_run, _ in found if task_run == twin]
    if not originals:
        twin_run = store.get_task_run(session, twin)
        named = (twin_run.outputs or {}).get("executionId") if twin_run is not None else None
        originals = [str(named)] if named else []
    now = store.utcnow()
    for child, original in zip(children, originals, strict=False):
        store_ledger_replay.insert_ledger_replay(session, child, source_execution_id=original, live_from=None, at=now)


# ---- the diff of two executions ------------------------------------------------------------------


def _paths(runs: Sequence[TaskRunRow]) -> dict[str, TaskRunRow]:
    """Task runs by their place in the flow: task ids (with iterations) from the root, e.g. `each[1]/t`."""
    by_id = {r.id: r for r in runs}

    def path(run: TaskRunRow) -> str:
        here = run.task_id if run.iteration is None else f"{run.task_id}[{run.iteration}]"
        parent = by_id.get(run.parent_id or "")
        return here if parent is None else f"{path(parent)}/{here}"

    return {path(r): r for r in runs}


def _side(run: TaskRunRow | None) -> dict[str, Any] | None:
    return None if run is None else {"taskRunId": run.id, "state": run.state, "outputs": run.outputs}


def _placed(value: Any, names: Mapping[str, str]) -> Any:
    """`value` with each execution's own ids (its id, its task runs' ids) replaced by what they name.

    An agent's `toolExecutions` name their tool's task run, a file URI its execution: ids that differ by
    construction between a replay and its original, and say nothing about whether the results are the same.
    """
    if isinstance(value, str):
        for identifier, name in names.items():
            value = value.replace(identifier, name)
        return value
    if isinstance(value, dict):
        return {k: _placed(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [_placed(v, names) for v in value]
    return value


def _names(session: Session, execution_id: str, places: Mapping[str, TaskRunRow]) -> dict[str, str]:
    """Each id of an execution that another execution has another of: its own, its task runs', its subflows'."""
    names = {execution_id: "{execution}", **{run.id: f"{{taskrun:{place}}}" for place, run in places.items()}}
    where = {run.id: place for place, run in places.items()}
    for child, task_run, batch in store_ledger_replay.child_executions(session, execution_id):
        names[child] = f"{{subflow:{where.get(task_run, task_run)}#{batch}}}"
    return names


def diff(session: Session, execution_id: str, other_id: str) -> dict[str, Any]:
    """Per task run (matched by place), the state and outputs of both executions, and whether they are equal.

    Outputs are compared with each execution's own ids replaced by what they name (`_placed`). `identical`
    holds when every task run of either has an equal twin and the flow outputs are equal; `providerCalls`
    counts each one's model calls that reached a provider (a ledger-served answer is no call).
    """
    executions = {}
    for key in (execution_id, other_id):
        row = store.get_execution(session, key)
        if row is None:
            raise NotFound("execution", key)
        executions[key] = row
    mine = _paths(store.task_runs_of(session, execution_id))
    theirs = _paths(store.task_runs_of(session, other_id))
    my_names, their_names = _names(session, execution_id, mine), _names(session, other_id, theirs)
    tasks: list[dict[str, Any]] = []
    for place in _ordered(mine, theirs):
        a, b = mine.get(place), theirs.get(place)
        same = (
            a is not None
            and b is not None
            and a.state == b.state
            and _placed(a.outputs, my_names) == _placed(b.outputs, their_names)
        )
        either = a if a is not None else b
        assert either is not None  # a place comes from one of them
        tasks.append(
            {
                "path": place,
                "taskId": either.task_id,
                "same": same,
                "execution": _side(a),
                "other": _side(b),
            }
        )
    sides = {}
    for key, row in executions.items():
        calls = store_llm.usage(session, execution_id=key)[3]
        replay = store_ledger_replay.ledger_replay_of(session, key)
        sides[key] = {
            "id": key,
            "state": row.state,
            "outputs": row.outputs,
            "providerCalls": calls,
            "ledgerReplayOf": replay.source_execution_id if replay is not None else None,
            "liveFrom": replay.live_from if replay is not None else None,
        }
    return {
        "execution": sides[execution_id],
        "other": sides[other_id],
        "identical": all(t["same"] for t in tasks)
        and _placed(executions[execution_id].outputs, my_names) == _placed(executions[other_id].outputs, their_names),
        "tasks": tasks,
    }


def _ordered(mine: Mapping[str, TaskRunRow], theirs: Mapping[str, TaskRunRow]) -> Iterable[str]:
    """Places in creation order of the first execution, then the other's places it lacks."""
    yield from sorted(mine, key=lambda p: mine[p].seq)
    yield from sorted((p for p in theirs if p not in mine), key=lambda p: theirs[p].seq)
