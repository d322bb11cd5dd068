"""Local drive: run a plan's leading pure control work inside the transaction that produced the plan.

A plan (core/plan.py) is normally compiled to a Celery canvas and sent. Its pure control tasks (Log,
Return, an If over them...) need no worker, yet each cost a message and a transaction there. Here they
run as the canvas would run them, in the caller's transaction, which holds the execution's lock: an
inline task run through the same claim and finish as `claims.run_inline`, a flowable's pure decision as
`outcomes.decide` records it, a join through `joins.join_in` (and the phase it starts is driven in turn).
The first node that needs a worker (or the bound) stops the drive; what remains is returned as a plan for
the caller to compile and send after commit. A crash anywhere rolls the whole transaction back.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from orchestrator import store
from orchestrator.core.plan import Chain, Fanout, Join, PlanNode, Run
from orchestrator.core.purity import PURE_DECIDERS, is_pure
from orchestrator.core.states import State
from orchestrator.engine import claims, flows, joins, outcomes, sla_assertions
from orchestrator.engine.values import LocalRunner, TaskOutcome, TaskRunCoordinates, Verdict
from orchestrator.store.database import Session
from orchestrator.store.tables import ExecutionRow

if TYPE_CHECKING:
    from orchestrator.engine.facade import Engine

_ENDED_OK = (State.SUCCESS, State.WARNING, State.SKIPPED)

#: Who claims a task run run here (its audit actor is `worker:` + this): the process, not a Celery task.
OWNER_PREFIX = "local"


def local_owner() -> str:
    return f"{OWNER_PREFIX}:{socket.gethostname()}:{os.getpid()}"


def drive(
    engine: Engine,
    session: Session,
    execution: ExecutionRow,
    plan: PlanNode | None,
    *,
    now: datetime | None = None,
    prev: Verdict = Verdict.OK,
) -> tuple[Verdict, PlanNode | None]:
    """Run what `plan` lets this transaction run; the verdict it ends with and what remains to send (None: nothing).

    `now`: the transaction's clock when the caller has it (else the database's is read once, at the first claim).
    `prev`: the verdict the plan's first link receives (a chain's rest after a task run that ended here).
    Engines without a local runner (or with CHORUS_LOCAL_DRIVE_MAX_RUNS=0) return the plan untouched.
    """
    runner = engine.local_runner
    if plan is None or runner is None or engine.settings.local_drive_max_runs <= 0:
        return prev, plan
    if sla_assertions.assertions(flows.flow_of_execution(engine, session, execution)):
        # EXECUTION_ASSERTION SLAs are checked after each commit while the execution runs: an execution that
        # ended in this transaction would never be checked (Kestra checks each change), so it travels as before.
        return prev, plan
    return _Drive(engine, session, execution, runner, now).node(plan, prev)


@dataclass
class _Drive:
    engine: Engine
    session: Session
    execution: ExecutionRow
    runner: LocalRunner
    _now: datetime | None

    def __post_init__(self) -> None:
        self.owner = local_owner()
        self.budget = self.engine.settings.local_drive_max_runs
        self.deadline = time.monotonic() + self.engine.settings.local_drive_max_ms / 1000

    def node(self, node: PlanNode, prev: Verdict) -> tuple[Verdict, PlanNode | None]:
        """Mirror of the canvas: a Run after a stopped link does nothing, a join always looks."""
        if isinstance(node, Run):
            if prev == Verdict.STOP:
                return Verdict.STOP, None
            return self._run(node) if self._runs_here(node) else (Verdict.OK, node)
        if isinstance(node, Join):
            return self._join(node, prev)
        if isinstance(node, Chain):
            verdict = prev
            for index, item in enumerate(node.items):
                verdict, rest = self.node(item, verdict)
                if rest is not None:
                    return verdict, Chain((rest, *node.items[index + 1 :]))
            return verdict, None
        rests = [rest for item in node.items if (rest := self.node(item, prev)[1]) is not None]
        if rests:
            return Verdict.OK, Fanout(tuple(rests), node.join)  # the chord's join waits for what was sent
        return self._join(node.join, prev)

    def _bound_reached(self) -> bool:
        return self.budget <= 0 or time.monotonic() >= self.deadline

    def _runs_here(self, node: Run) -> bool:
        if self._bound_reached() or not (node.inline or node.enter):
            return False
        execution = self.execution
        key = (execution.tenant, execution.namespace, execution.flow_id, execution.flow_revision, node.task_id)
        pure = self.engine.flow_cache.purity.get(key)
        if pure is None:
            flow = flows.flow_of_execution(self.engine, self.session, execution)
            task = flow.task(node.task_id)
            pure = is_pure(flow, task) and (not node.enter or task.type in PURE_DECIDERS)
            self.engine.flow_cache.purity[key] = pure
        return pure

    def _join(self, node: Join, prev: Verdict) -> tuple[Verdict, PlanNode | None]:
        if prev != Verdict.STOP and self._bound_reached():
            return Verdict.OK, node
        # After a stopped link the join still runs here (cheap, no task body): a canvas sent now would have
        # no stopped link before it, and its Runs would go on where the chain had stopped.
        verdict, plan = joins.join_in(self.engine, self.session, self.execution, node.parent_id, actor="system:join")
        if plan is not None:  # a next phase takes the join's place, as Task.replace does
            return self.node(plan, Verdict.OK)
        return verdict, None

    def _run(self, node: Run) -> tuple[Verdict, PlanNode | None]:
        session, execution = self.session, self.execution
        at = TaskRunCoordinates(node.execution_id, node.task_id, node.parent_id, node.iteration, node.attempt)
        existing = claims.locked_task_run(session, at)
        if existing is not None and existing.attempt == at.attempt and State(existing.state) in _ENDED_OK:
            return Verdict.OK, None  # as claims.run_inline: already done
        if self._now is None:
            self._now = store.db_now(session)  # claims are judged by the database's clock
        claimed = claims.claim_in(
            self.engine, session, execution, at, self.owner, None, None, self._now, locked_row=existing
        )
        if claimed is None:
            return Verdict.STOP, None
        self.budget -= 1
        row = store.loaded_task_run(session, at.task_run_id)
        assert row is not None  # claimed just now, in this transaction
        store.note_flow(session, flows.task_types(self.engine, claimed.flow))
        actor = f"worker:{self.owner}"
        if not node.enter:
            outcome = self.runner.run(self.engine, claimed)
            return outcomes.finish_locked(
                self.engine, session, execution, row, claimed.task, claimed.flow, outcome, actor=actor
            ), None
        decided = self.runner.decide(self.engine, claimed)
        if isinstance(decided, TaskOutcome):
            return outcomes.finish_locked(
                self.engine, session, execution, row, claimed.task, claimed.flow, decided, actor=actor
            ), None
        body = outcomes.decide_locked(
            self.engine, session, execution, row, claimed, decided.choice, decided.outputs, actor=actor
        )
        if body is None:
            return Verdict.STOP, None
        return self.node(body, Verdict.OK)  # the body takes the flowable's place in its chain
