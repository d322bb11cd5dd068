"""The Engine: the public surface of the controller, over its collaborators.

Workers, the API, the CLI and the triggers package change state only through these methods. Each
operation is one transaction (`Engine.transaction`): it locks the execution row, asks the pure core for
a decision, writes state with `store.record_transition` (state + audit together), commits, and only then
runs the after-commit reactions and sends Celery messages, so a message never refers to uncommitted state.
The work itself lives in the collaborators: flows, submission, claims, outcomes, joins, operations,
subflows, sleeps (one family of operations each).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from celery import Celery

from orchestrator.audit_keys import load_keyring
from orchestrator.core.decision import TaskRunDecision
from orchestrator.core.errors import FlowErrorDetail
from orchestrator.core.flow import Flow
from orchestrator.core.plan import (
    PlanNode,
    Run,
)
from orchestrator.core.states import State
from orchestrator.engine import (
    attempt_messages,
    claims,
    flows,
    joins,
    operations,
    outcomes,
    pending,
    sleeps,
    subflows,
    submission,
)
from orchestrator.engine.flows import FlowCache
from orchestrator.engine.kv import KeyValueStore
from orchestrator.engine.ledger_replay import LedgerReplays
from orchestrator.engine.llm_ledger import LlmLedger
from orchestrator.engine.reactions import DEFAULT_REACTIONS, Reaction
from orchestrator.engine.submission import SubmitRequest
from orchestrator.engine.values import (
    ClaimedTaskRun,
    LocalRunner,
    LogRecord,
    TaskOutcome,
    TaskRunCoordinates,
    Verdict,
)
from orchestrator.hooks import EngineHooks
from orchestrator.settings import Settings
from orchestrator.store.database import Session, make_engine, make_sessionmaker, sessionmaker, transaction
from orchestrator.store.tables import ExecutionRow, FlowRevisionRow

logger = logging.getLogger(__name__)


class Engine:
    """The controller: every state change of flows, executions and task runs."""

    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        celery: Celery,
        hooks: Sequence[EngineHooks] = (),
        reactions: Sequence[Reaction] = DEFAULT_REACTIONS,
        local_runner: LocalRunner | None = None,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.celery = celery
        self.hooks = list(hooks)
        self.reactions = list(reactions)
        self.kv = KeyValueStore(settings.tenant, sessions)
        self.flow_cache = FlowCache()
        #: How a transaction that changes executions' states reads the flows' version for a Flow-trigger reaction
        #: (`Committed.flows_version`); None reads nothing. The triggers package sets it (triggers/wiring.py).
        self.flows_version: Callable[[Session], tuple[Any, ...]] | None = None
        #: Called once by `close`, last registered first (e.g. the flows listener's thread and connection).
        self._closers: list[Callable[[], object]] = []
        #: Task bodies this engine may run in its own transactions (engine/local_drive.py); None sends all.
        self.local_runner = local_runner

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        celery: Celery,
        *,
        pool_size: int = 2,
        hooks: Sequence[EngineHooks] = (),
        pre_ping: bool = True,
        local_runner: LocalRunner | None = None,
    ) -> Engine:
        """An engine over its own connection pool, signing audit events with the current key (`pre_ping`:
        see `store.database.make_engine`)."""
        db = make_engine(settings.database_url, pool_size=pool_size, pre_ping=pre_ping)
        sessions = make_sessionmaker(db, audit_key=load_keyring(settings).current)
        return cls(settings, sessions, celery, hooks=hooks, local_runner=local_runner)

    def add_reaction(self, reaction: Reaction) -> None:
        """Run `reaction` after every committed transaction, after the reactions already registered."""
        self.reactions.append(reaction)

    def on_close(self, closer: Callable[[], object]) -> None:
        """Call `closer` when the engine closes (before its owner disposes of its connection pool)."""
        self._closers.append(closer)

    def close(self) -> None:
        """Stop what the engine's wiring started (threads, their connections); the pool stays its owner's."""
        while self._closers:
            self._closers.pop()()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One operation's transaction; what it changed reaches the reactions only once it has committed."""
        with transaction(self.sessions) as session:
            yield session
            committed, after_commit = pending.take(session, flows_version=self.flows_version)
        for reaction in self.reactions:
            reaction(self, committed)
        for callback in after_commit:  # e.g. delivering the events this transaction published
            callback()

    # ---- flows ------------------------------------------------------------------------------------------

    def flow_of(self, row: FlowRevisionRow) -> Flow:
        return flows.flow_of(self, row)

    def deploy_flow(self, source: str, *, actor: str, expect: tuple[str, str] | None = None) -> FlowRevisionRow:
        """Validate and save a flow as a new revision (unchanged source keeps its revision)."""
        return flows.deploy_flow(self, source, actor=actor, expect=expect)

    def reference_warnings(self, flow: Flow) -> list[FlowErrorDetail]:
        """The namespaces a flow names that its own may not use (refused when the act happens), with lines."""
        return flows.reference_warnings(self, flow)

    def delete_flow(self, namespace: str, flow_id: str, *, actor: str) -> None:
        return flows.delete_flow(self, namespace, flow_id, actor=actor)

    # ---- executions -------------------------------------------------------------------------------------

    def submit(
        self,
        namespace: str,
        flow_id: str,
        *,
        inputs: Mapping[str, Any],
        labels: list[dict[str, str]] | None = None,
        actor: str,
        revision: int | None = None,
        trigger: dict[str, Any] | None = None,
        execution_id: str | None = None,
        scheduled_at: datetime | None = None,
        require_inputs: bool = True,
    ) -> ExecutionRow:
        """Create an execution with typed inputs, mark it RUNNING and dispatch its first canvas.

        With `scheduled_at` in the future (Kestra's `scheduleDate`) it stays CREATED until the sweeper
        starts it then. `require_inputs=False` lets required inputs be missing (a start with no inputs at all).
        """
        return submission.submit(
            self,
            namespace,
            flow_id,
            inputs=inputs,
            labels=labels,
            actor=actor,
            revision=revision,
            trigger=trigger,
            execution_id=execution_id,
            scheduled_at=scheduled_at,
            require_inputs=require_inputs,
        )

    def submit_many(self, requests: Sequence[SubmitRequest]) -> list[ExecutionRow | Exception]:
        """Start several executions in one transaction (one commit); each request gets its own answer,
        its own error included: a group that fails as a whole is submitted again one request at a time."""
        return submission.submit_many(self, requests)

    def create_execution(
        self,
        session: Session,
        flow_row: FlowRevisionRow | flows.LiveRevision,
        flow: Flow,
        inputs: dict[str, Any],
        labels: list[dict[str, str]],
        *,
        actor: str,
        trigger: dict[str, Any] | None = None,
        parent: tuple[str, str] | None = None,
        execution_id: str | None = None,
        scheduled_at: datetime | None = None,
        retry_of: ExecutionRow | None = None,
    ) -> ExecutionRow:
        """Insert a RUNNING execution (CREATED first, both audited); the caller dispatches after commit.

        A `scheduled_at` in the future leaves it CREATED for the sweeper; `retry_of` makes it the next
        attempt of that execution (Kestra's retry `behavior: CREATE_NEW_EXECUTION`).
        """
        return submission.create_execution(
            self,
            session,
            flow_row,
            flow,
            inputs,
            labels,
            actor=actor,
            trigger=trigger,
            parent=parent,
            execution_id=execution_id,
            scheduled_at=scheduled_at,
            retry_of=retry_of,
        )

    def set_labels(self, execution_id: str, labels: list[dict[str, str]], *, actor: str) -> list[dict[str, str]]:
        """Add or override execution labels (the Labels task, the API); audited."""
        return submission.set_labels(self, execution_id, labels, actor=actor)

    def trigger_webhook(
        self, namespace: str, flow_id: str, key: str, variables: dict[str, Any], *, actor: str
    ) -> tuple[ExecutionRow | None, dict[str, Any]]:
        """Start an execution from a Webhook trigger whose (rendered) key matches; NotFound otherwise, and
        no execution (None) when the trigger's `conditions` (or Kestra 2's `when`) do not hold.

        Unknown flows, disabled triggers and wrong keys all answer the same NotFound, so a caller
        cannot probe which flows exist.
        """
        return submission.trigger_webhook(self, namespace, flow_id, key, variables, actor=actor)

    def webhook_properties(self, execution: ExecutionRow) -> dict[str, Any]:
        """The properties of the Webhook trigger that started this execution (`wait`, `returnOutputs`, ...);
        no query when this process started it (its revision is parsed)."""
        return submission.webhook_properties(self, execution)

    def dispatch(self, execution_id: str, *, actor: str) -> PlanNode | None:
        """Compile what remains of an execution from the database and send it (idempotent)."""
        return joins.dispatch(self, execution_id, actor=actor)

    def join(self, execution_id: str, parent_id: str | None, *, actor: str) -> tuple[Verdict, PlanNode | None]:
        """Finish a flowable (or the execution) whose children ended, or start its next phase.

        Returns the verdict for the chain and, when a phase starts, the plan the join replaces itself with.
        """
        return joins.join(self, execution_id, parent_id, actor=actor)

    # ---- task runs --------------------------------------------------------------------------------------

    def pool_of(self, at: TaskRunCoordinates) -> str | None:
        """The pool that runs the task a message names (None: no such execution or task, the claim will say so).

        A worker compares it with the queue the message came from before claiming: a message re-applied to
        another pool's queue must not run where that pool's tools, limits or sandbox are missing.
        """
        return claims.pool_of(self, at)

    def run_of_celery_task(self, celery_task_id: str) -> Run | None:
        """The task run attempt a Celery message claimed, as the plan node that compiles to that message again
        (None: no attempt records the id); for `chorus retry` when the result backend no longer knows it."""
        return attempt_messages.run_of_celery_task(self, celery_task_id)

    def task_run_states(self, task_run_ids: Sequence[str]) -> dict[str, str]:
        """The current state of each of these task runs that exists (for a worker's report to Celery)."""
        return claims.task_run_states(self, task_run_ids)

    def failed_tasks(self, execution_id: str) -> list[str] | None:
        """The ids of the FAILED task runs' tasks when the execution ended FAILED; None when it did not."""
        return claims.failed_tasks(self, execution_id)

    def claim(
        self,
        at: TaskRunCoordinates,
        *,
        owner: str,
        celery_task_id: str | None,
        requested_by: str | None = None,
        check_pool: Callable[[str], None] | None = None,
    ) -> ClaimedTaskRun | None:
        """Take one attempt of a task run, or None when another worker has it or it must not run.

        `requested_by`: who sent the message by hand (a re-apply); only such a message gives a failed
        task run another attempt. None for the planner's own messages.
        `check_pool`: called with the pool of the task before anything is written; it raises to refuse the message.
        """
        return claims.claim(
            self, at, owner=owner, celery_task_id=celery_task_id, requested_by=requested_by, check_pool=check_pool
        )

    def hand_back(self, claimed: ClaimedTaskRun) -> None:
        """Release a claim whose attempt this (stopping) worker leaves unfinished, for another to take over."""
        claims.hand_back(self, claimed)

    def run_inline(
        self,
        execution_id: str,
        runs: Sequence[TaskRunCoordinates],
        *,
        join: bool,
        skip_runs: bool,
        owner: str,
        celery_task_id: str | None,
        requested_by: str | None,
        run: Callable[[ClaimedTaskRun], TaskOutcome],
        independent: bool = False,
    ) -> tuple[Verdict, PlanNode | None, bool]:
        """Claim, run and record consecutive inline task runs, then their parent's join, in one transaction.

        `run` is pure (TaskType.inline): nothing happens outside this transaction, so a crash anywhere
        leaves nothing behind and a redelivery starts over. Task runs already ended (a redelivery after
        commit, or a re-apply of the whole message) are passed over; the first that cannot be claimed or
        does not succeed stops the rest, as a chain link's `stop` verdict would. `skip_runs` (the chain's
        previous link stopped) leaves only the join. `independent`: siblings of a fan-out, where one that
        does not succeed stops none of the others. Returns the verdict, the plan the join starts (a
        next phase), and whether a failed task run was re-applied (its chain continuation is gone).
        """
        return claims.run_inline(
            self,
            execution_id,
            runs,
            join=join,
            skip_runs=skip_runs,
            owner=owner,
            celery_task_id=celery_task_id,
            requested_by=requested_by,
            run=run,
            independent=independent,
        )

    def execution_location(self, execution_id: str) -> tuple[str, str] | None:
        """The (namespace, flow id) of an execution, for the namespace checks of tasks that name one by id."""
        return claims.execution_location(self, execution_id)

    def child_location(self, execution_id: str, parent_id: str) -> tuple[str, str] | None:
        """The (namespace, flow id) of an execution `parent_id` started as a Subflow, else None."""
        return claims.child_location(self, execution_id, parent_id)

    def error_logs(self, execution_id: str) -> list[dict[str, Any]]:
        """Kestra's `errorLogs()`: the execution's ERROR log lines so far."""
        return claims.error_logs(self, execution_id)

    def task_run_state(self, task_run_id: str) -> str | None:
        return claims.task_run_state(self, task_run_id)

    def task_run_attempt(self, task_run_id: str) -> int:
        """The attempt number the next claim of this task run must carry (current + 1 once it ended)."""
        return claims.task_run_attempt(self, task_run_id)

    def current_variables(self, claimed: ClaimedTaskRun) -> dict[str, Any]:
        """A claimed task run's variables as they are now (the outputs of the task runs ended since its claim)."""
        return claims.current_variables(self, claimed)

    def set_running_outputs(self, claimed: ClaimedTaskRun, outputs: dict[str, Any]) -> None:
        """Outputs of a flowable this worker owns, set before its join (WorkingDirectory's outputFiles)."""
        return claims.set_running_outputs(self, claimed, outputs)

    def heartbeat(self, at: TaskRunCoordinates, owner: str) -> bool:
        return claims.heartbeat(self, at, owner)

    def finish(self, claimed: ClaimedTaskRun, outcome: TaskOutcome) -> Verdict:
        """Record an attempt's outcome; retry, allowFailure and allowWarning decide the task run's state."""
        return outcomes.finish(self, claimed, outcome)

    def finish_and_drive(
        self, claimed: ClaimedTaskRun, outcome: TaskOutcome, then: PlanNode
    ) -> tuple[Verdict, PlanNode | None]:
        """`finish`, then run what follows the task run in its chain (`then`) as far as local drive may, in the
        same transaction. Returns the verdict to hand on and what of `then` remains to send (None: nothing)."""
        return outcomes.finish_and_drive(self, claimed, outcome, then)

    def decide(
        self,
        claimed: ClaimedTaskRun,
        decision: TaskRunDecision,
        outputs: dict[str, Any] | None = None,
        *,
        logs: tuple[LogRecord, ...] = (),
    ) -> PlanNode | None:
        """Record a flowable's decision (branch taken, values) and return the plan of its body.

        `logs`: what the attempt logged so far, kept with the decision (an agent pausing for an approval
        reports nothing more, so its logs would be lost otherwise).
        """
        return outcomes.decide(self, claimed, decision, outputs, logs=logs)

    def decide_and_drive(
        self, claimed: ClaimedTaskRun, decision: TaskRunDecision, outputs: dict[str, Any] | None = None
    ) -> tuple[Verdict, PlanNode | None]:
        """`decide`, then run the body's leading pure control work in the same transaction.

        Returns the verdict the flowable hands on (its body ended here) or the rest of its body to send (STOP and
        None when the decision was not recorded: the claim was lost).
        """
        return outcomes.decide_and_drive(self, claimed, decision, outputs)

    def fetch_logs(
        self, execution_id: str, *, task_ids: Sequence[str] = (), min_level: str = "INFO"
    ) -> list[dict[str, Any]]:
        """Log lines of an execution (the Fetch task): by task ids, at or above a level."""
        return claims.fetch_logs(self, execution_id, task_ids=task_ids, min_level=min_level)

    def child_execution_outputs(self, parent_task_run_id: str) -> list[dict[str, Any]]:
        return claims.child_execution_outputs(self, parent_task_run_id)

    # ---- execution control (see orchestrator.engine.operations) -----------------------------------------

    def kill(self, execution_id: str, *, actor: str, compensate: bool = False) -> ExecutionRow:
        return operations.kill(self, execution_id, actor=actor, compensate=compensate)

    def pause(self, execution_id: str, *, actor: str) -> ExecutionRow:
        return operations.pause(self, execution_id, actor=actor)

    def resume(self, execution_id: str, inputs: Mapping[str, Any], *, actor: str) -> ExecutionRow:
        return operations.resume(self, execution_id, inputs, actor=actor)

    def unqueue(self, execution_id: str, *, actor: str) -> ExecutionRow:
        return operations.unqueue(self, execution_id, actor=actor)

    def force_run(self, execution_id: str, *, actor: str) -> ExecutionRow:
        return operations.force_run(self, execution_id, actor=actor)

    def restart(self, execution_id: str, *, actor: str) -> ExecutionRow:
        return operations.restart(self, execution_id, actor=actor)

    def replay(
        self,
        execution_id: str,
        *,
        task_run_id: str | None = None,
        revision: int | None = None,
        inputs: Mapping[str, Any] | None = None,
        actor: str,
        ledger: bool = False,
        live_from: str | None = None,
    ) -> ExecutionRow:
        return operations.replay(
            self, execution_id, task_run_id=task_run_id, revision=revision, inputs=inputs, actor=actor,
            ledger=ledger, live_from=live_from,
        )  # fmt: skip

    def change_task_run_state(self, execution_id: str, task_run_id: str, state: State, *, actor: str) -> ExecutionRow:
        return operations.change_task_run_state(self, execution_id, task_run_id, state, actor=actor)

    def change_status(self, execution_id: str, state: State, *, actor: str) -> ExecutionRow:
        return operations.change_status(self, execution_id, state, actor=actor)

    def start_subflow(self, claimed: ClaimedTaskRun, **request: Any) -> Verdict:
        return subflows.start(self, claimed, **request)

    def begin_sleep(self, claimed: ClaimedTaskRun, duration: timedelta) -> sleeps.SleepEnd | None:
        """When this Sleep ends: recorded by the first claim (a write), read back by later ones."""
        return sleeps.begin(self, claimed, duration)

    def park_sleep(self, claimed: ClaimedTaskRun, due: datetime, logs: tuple[LogRecord, ...]) -> Verdict:
        sleeps.park(self, claimed, due, logs)
        return Verdict.STOP

    def start_subflows(self, claimed: ClaimedTaskRun, **request: Any) -> Verdict:
        """One child execution per batch of inputs (ForEachItem); the task run ends when they all have."""
        return subflows.start_many(self, claimed, **request)

    def llm_ledger(self) -> LlmLedger:
        """The record of model calls (tokens, cost, audit, replay) over this engine's database."""
        return LlmLedger(self.sessions, self.settings.llm)

    def ledger_replays(self) -> LedgerReplays:
        """Whether a task run of a replay is served from the original's ledger, and what that recorded."""
        return LedgerReplays(self.sessions)
