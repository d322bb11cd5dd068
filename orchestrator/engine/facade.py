"""Controller operations: deploy, submit, claim, finish, join, sweep; one transaction each, then send.

Workers and the API change state only through here. Each operation locks the execution row, asks the
pure core for a decision, writes state with `store.record_transition` (state + audit together),
commits, and only then sends Celery messages, so a message never refers to uncommitted state.
"""

from __future__ import annotations

import dataclasses
import hmac
import json
import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from celery import Celery
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from orchestrator import internal_storage as storage
from orchestrator import store
from orchestrator.audit_keys import load_keyring
from orchestrator.core import kestra2
from orchestrator.core.errors import ChorusError, Conflict, ExpressionError, FlowInvalid, LabelsInvalid, NotFound
from orchestrator.core.expressions import has_expression, render
from orchestrator.core.flow import Flow, TaskSpec
from orchestrator.core.ids import new_id
from orchestrator.core.inputs import coerce_inputs
from orchestrator.core.namespace_access import refused_references
from orchestrator.core.parse import parse_flow
from orchestrator.core.plan import (
    Complete,
    PlanNode,
    Snapshot,
    StartPhase,
    Wait,
    child_lists,
    decide_join,
    has_runs,
    inside,
    phase,
    pool_of,
    remaining,
)
from orchestrator.core.retry import next_attempt_at
from orchestrator.core.schedule_conditions import schedule_conditions_hold
from orchestrator.core.states import State, apply_allowances
from orchestrator.engine import (
    approval_tasks,
    checks,
    child_failure,
    events,
    loop_scope,
    loops,
    operations,
    sleeps,
    subflows,
)
from orchestrator.engine.compiler import to_canvas
from orchestrator.engine.flow_validation import validate_flow
from orchestrator.engine.kv import KeyValueStore
from orchestrator.engine.llm_ledger import LlmLedger
from orchestrator.engine.reactions import DEFAULT_REACTIONS, Committed, Reaction
from orchestrator.engine.values import (
    ClaimedTaskRun,
    LogRecord,
    TaskOutcome,
    TaskRunCoordinates,
    Verdict,
    log_row,
    still_ours,
    task_run_view,
)
from orchestrator.engine.variables import execution_variables, flow_outputs
from orchestrator.hooks import EngineHooks
from orchestrator.settings import Settings
from orchestrator.store.database import make_engine, make_sessionmaker, read_only, transaction
from orchestrator.store.tables import ExecutionRow, FlowRevisionRow, TaskRunRow

logger = logging.getLogger(__name__)

_ENDED_OK = (State.SUCCESS, State.WARNING, State.SKIPPED)

CORRELATION_LABEL = "system.correlationId"


@dataclass
class _FlowCache:
    """Parsed flows by revision: a revision never changes, so parsing once per process is enough."""

    flows: dict[tuple[str, str, str, int], Flow] = field(default_factory=dict)
    task_types: dict[tuple[str, str, int], dict[str, str]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


class Engine:
    """The controller: every state change of flows, executions and task runs."""

    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        celery: Celery,
        hooks: Sequence[EngineHooks] = (),
        reactions: Sequence[Reaction] = DEFAULT_REACTIONS,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.celery = celery
        self.hooks = list(hooks)
        self.reactions = list(reactions)
        self.kv = KeyValueStore(settings.tenant, sessions)
        self._cache = _FlowCache()

    @classmethod
    def from_settings(cls, settings: Settings, celery: Celery, *, pool_size: int = 2) -> Engine:
        """An engine over its own connection pool, signing audit events with the current key."""
        db = make_engine(settings.database_url, pool_size=pool_size)
        return cls(settings, make_sessionmaker(db, audit_key=load_keyring(settings).current), celery)

    def add_reaction(self, reaction: Reaction) -> None:
        """Run `reaction` after every committed transaction, after the reactions already registered."""
        self.reactions.append(reaction)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One operation's transaction; what it changed reaches the reactions only once it has committed."""
        with transaction(self.sessions) as session:
            yield session
            committed = Committed(
                transitions=tuple(session.info.get("transitions", ())),
                ended_children=tuple(session.info.get("ended_children", ())),
                ended_flows=frozenset(session.info.get("ended_flows", ())),
                approval_outcomes=tuple(session.info.get("approval_outcomes", ())),
            )
            after_commit = list(session.info.get("after_commit", ()))
        for reaction in self.reactions:
            reaction(self, committed)
        for callback in after_commit:  # e.g. delivering the events this transaction published
            callback()

    # ---- flows ----------------------------------------------------------------------------------

    def cached_flows(self, namespace: str, flow_id: str) -> list[Flow]:
        """The revisions of a flow this process has parsed (a cheap look before a query)."""
        with self._cache.lock:
            return [f for (_, ns, fid, _), f in self._cache.flows.items() if ns == namespace and fid == flow_id]

    def flow_of(self, row: FlowRevisionRow) -> Flow:
        key = (row.tenant, row.namespace, row.flow_id, row.revision)
        with self._cache.lock:
            flow = self._cache.flows.get(key)
        if flow is None:
            flow = parse_flow(row.source)
            with self._cache.lock:
                self._cache.flows[key] = flow
        return flow

    def deploy_flow(self, source: str, *, actor: str, expect: tuple[str, str] | None = None) -> FlowRevisionRow:
        """Validate and save a flow as a new revision (unchanged source keeps its revision)."""
        flow = validate_flow(source)
        if expect is not None and (flow.namespace, flow.id) != expect:
            raise FlowInvalid(
                [],
                f"flow id and namespace in the body ({flow.namespace}.{flow.id}) differ from the path "
                f"({expect[0]}.{expect[1]})",
            )
        self.check_references(flow)
        from orchestrator.core.parse import load_document

        document = load_document(source)
        tenant = self.settings.tenant
        with self.transaction() as session:
            before = store.latest_flow(session, tenant, flow.namespace, flow.id)
            row = store.save_flow_revision(session, tenant, flow.namespace, flow.id, source, document)
            if before is None or before.revision != row.revision or before.deleted:
                store.append_audit(
                    session,
                    store.flow_chain_key(tenant, flow.namespace, flow.id),
                    actor=actor,
                    action="flow.created" if before is None else "flow.updated",
                    subject=f"{flow.namespace}.{flow.id}",
                    payload={"revision": row.revision},
                )
        return row

    def check_references(self, flow: Flow) -> None:
        """Refuse a flow naming a namespace its own may not use (CHORUS_NAMESPACE_ACCESS), each with its line."""
        refused = refused_references(flow, self.settings.namespace_grants)
        if refused:
            raise FlowInvalid(refused)

    def delete_flow(self, namespace: str, flow_id: str, *, actor: str) -> None:
        tenant = self.settings.tenant
        with self.transaction() as session:
            if store.mark_flow_deleted(session, tenant, namespace, flow_id) == 0:
                raise NotFound("flow", f"{namespace}.{flow_id}")
            store.append_audit(
                session,
                store.flow_chain_key(tenant, namespace, flow_id),
                actor=actor,
                action="flow.deleted",
                subject=f"{namespace}.{flow_id}",
                payload={},
            )

    def live_revision(self, session: Session, namespace: str, flow_id: str, revision: int | None) -> FlowRevisionRow:
        row = store.latest_flow(session, self.settings.tenant, namespace, flow_id, revision=revision)
        if row is None or row.deleted:
            raise NotFound("flow", f"{namespace}.{flow_id}")
        return row

    def flow_of_execution(self, session: Session, execution: ExecutionRow) -> Flow:
        # A revision never changes: once parsed, later transitions of its executions skip the query.
        key = (execution.tenant, execution.namespace, execution.flow_id, execution.flow_revision)
        with self._cache.lock:
            flow = self._cache.flows.get(key)
        if flow is None:
            row = store.latest_flow(
                session, execution.tenant, execution.namespace, execution.flow_id, revision=execution.flow_revision
            )
            if row is None:
                raise NotFound("flow", f"{execution.namespace}.{execution.flow_id} revision {execution.flow_revision}")
            flow = self.flow_of(row)
        session.info["task_types"] = self._task_types(flow)
        session.info["flow_concurrency"] = flow.concurrency is not None
        return flow

    def _task_types(self, flow: Flow) -> dict[str, str]:
        key = (flow.namespace, flow.id, id(flow))
        types = self._cache.task_types.get(key)
        if types is None:
            types = {task.id: task.type for task in flow.iter_tasks()}
            self._cache.task_types[key] = types
        return types

    # ---- executions -----------------------------------------------------------------------------

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
        with self.transaction() as session:
            flow_row = self.live_revision(session, namespace, flow_id, revision)
            flow = self.flow_of(flow_row)
            if flow.disabled:
                raise Conflict(f"flow {namespace}.{flow_id} is disabled")
            typed_inputs = coerce_inputs(flow, inputs, require=require_inputs or bool(inputs))
            behavior, messages = checks.check_verdict(flow, typed_inputs, labels or [])
            row = self.create_execution(
                session, flow_row, flow, typed_inputs, labels or [], actor=actor, trigger=trigger,
                execution_id=execution_id, scheduled_at=scheduled_at,
            )  # fmt: skip
            if behavior == "FAIL_EXECUTION":
                checks.fail_at_creation(session, row, "; ".join(messages), actor=actor)
            # A new execution has no task runs yet: its first plan needs no second transaction (what
            # `dispatch` would read back is exactly this), which saves a commit on every submit.
            running = State(row.state) is State.RUNNING
            plan = remaining(flow, Snapshot(row.id, {}, store.utcnow())) if running else None
        if plan is not None:
            to_canvas(self.celery, plan).apply_async()
        return row

    def create_execution(
        self,
        session: Session,
        flow_row: FlowRevisionRow,
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
        now = store.utcnow()
        execution_id = execution_id or new_id()
        all_labels = [{"key": label.key, "value": label.value} for label in flow.labels]
        all_labels = _merge_labels(all_labels, labels)
        if not any(label["key"] == CORRELATION_LABEL for label in all_labels):
            # Kestra links every execution of one causal chain (subflows, replays) by this label.
            all_labels.append({"key": CORRELATION_LABEL, "value": execution_id})
        _check_labels(all_labels, self.settings)
        row = ExecutionRow(
            id=execution_id,
            tenant=self.settings.tenant,
            namespace=flow.namespace,
            flow_id=flow.id,
            flow_revision=flow_row.revision,
            state=str(State.CREATED),
            state_history=[{"state": str(State.CREATED), "date": store.iso(now)}],
            inputs=inputs,
            outputs=None,
            labels=all_labels,
            trigger=trigger,
            parent_execution_id=parent[0] if parent else None,
            parent_task_run_id=parent[1] if parent else None,
            original_id=None,
            restarts=retry_of.restarts + 1 if retry_of is not None else 0,
            created_at=now,
            updated_at=now,
            ended_at=None,
            scheduled_at=scheduled_at if scheduled_at is not None and scheduled_at > now else None,
            original_created_at=(retry_of.original_created_at or retry_of.created_at) if retry_of else None,
        )
        row.sla_due_at, row.sla = operations.sla_deadline(flow, now)
        payload: dict[str, Any] = {"flow_revision": flow_row.revision, "labels": all_labels}
        if row.scheduled_at is not None:
            payload["scheduled_at"] = store.iso(row.scheduled_at)
        if retry_of is not None:
            payload["retry_of"] = retry_of.id
        admitted = self._admission(session, flow) if row.scheduled_at is None else None
        running = admitted is State.RUNNING
        store.create_execution(session, row, actor=actor, payload=payload, running=running)
        if admitted is not None and not running:
            store.record_transition(session, row, admitted, actor=actor)  # QUEUED, or refused by its concurrency
        return row

    def start_scheduled(self, now: datetime) -> list[str]:
        """Start the CREATED executions whose `scheduled_at` has come, through concurrency admission."""
        started: list[str] = []
        with self.transaction() as session:
            for row in store.due_scheduled_executions(session, now):
                flow = self.flow_of_execution(session, row)
                session.info["execution"] = row
                state = self._admission(session, flow)
                store.record_transition(session, row, state, actor="system:schedule", values={"scheduled_at": None})
                if state is State.RUNNING:
                    started.append(row.id)
        for execution_id in started:
            self.dispatch(execution_id, actor="system:schedule")
        return started

    def _admission(self, session: Session, flow: Flow) -> State:
        """RUNNING, or what the flow's `concurrency` says when its limit is reached (QUEUED, CANCELLED, FAILED)."""
        session.info["flow_concurrency"] = flow.concurrency is not None
        if flow.concurrency is None:
            return State.RUNNING
        tenant = self.settings.tenant
        store.lock_flow_concurrency(session, tenant, flow.namespace, flow.id)
        if store.count_active_executions(session, tenant, flow.namespace, flow.id) < flow.concurrency.limit:
            return State.RUNNING
        return {"QUEUE": State.QUEUED, "CANCEL": State.CANCELLED, "FAIL": State.FAILED}[flow.concurrency.behavior]

    def admit_queued(self, tenant: str, namespace: str, flow_id: str) -> None:
        """Start queued executions of a flow while its concurrency limit allows."""
        started: list[str] = []
        with self.transaction() as session:
            row = store.latest_flow(session, tenant, namespace, flow_id)
            flow = self.flow_of(row) if row is not None else None
            if flow is None or flow.concurrency is None:
                return
            store.lock_flow_concurrency(session, tenant, namespace, flow_id)
            free = flow.concurrency.limit - store.count_active_executions(session, tenant, namespace, flow_id)
            if free <= 0:
                return
            for queued in store.oldest_queued_executions(session, tenant, namespace, flow_id, free):
                session.info["execution"] = queued
                store.record_transition(session, queued, State.RUNNING, actor="system:concurrency")
                started.append(queued.id)
        for execution_id in started:
            self.dispatch(execution_id, actor="system:concurrency")

    def snapshot(self, session: Session, execution_id: str) -> Snapshot:
        runs = store.task_runs_of(session, execution_id)
        return Snapshot(execution_id, {r.id: task_run_view(r) for r in runs}, store.utcnow())

    def dispatch(self, execution_id: str, *, actor: str) -> PlanNode | None:
        """Compile what remains of an execution from the database and send it (idempotent)."""
        with self.transaction() as session:
            execution = store.lock_execution(session, execution_id)
            if execution is None:
                raise NotFound("execution", execution_id)
            if State(execution.state) is State.RESTARTED:
                store.record_transition(session, execution, State.RUNNING, actor=actor)
            if State(execution.state) is not State.RUNNING:
                return None
            snap = self.snapshot(session, execution_id)
            plan = remaining(self.flow_of_execution(session, execution), snap)
            store.clear_due_loops(session, execution_id, snap.now)
            store.touch_execution(session, execution_id, snap.now)
        if plan is not None:
            logger.debug("dispatching %s for %s", plan, execution_id, extra={"execution_id": execution_id})
            to_canvas(self.celery, plan).apply_async()
        return plan

    # ---- task runs: claim, decide, finish -------------------------------------------------------

    def pool_of(self, at: TaskRunCoordinates) -> str | None:
        """The pool that runs the task a message names (None: no such execution or task, the claim will say so).

        A worker compares it with the queue the message came from before claiming: a message re-applied to
        another pool's queue must not run where that pool's tools, limits or sandbox are missing.
        """
        with read_only(self.sessions) as session:
            execution = store.get_execution(session, at.execution_id)
            if execution is None:
                return None
            try:
                return pool_of(self.flow_of_execution(session, execution).task(at.task_id))
            except (ChorusError, KeyError):
                return None

    def task_run_states(self, task_run_ids: Sequence[str]) -> dict[str, str]:
        """The current state of each of these task runs that exists (for a worker's report to Celery)."""
        with read_only(self.sessions) as session:
            rows = (store.get_task_run(session, task_run_id) for task_run_id in task_run_ids)
            return {row.id: row.state for row in rows if row is not None}

    def failed_tasks(self, execution_id: str) -> list[str] | None:
        """The ids of the FAILED task runs' tasks when the execution ended FAILED; None when it did not."""
        with read_only(self.sessions) as session:
            execution = store.get_execution(session, execution_id)
            if execution is None or execution.state != State.FAILED:
                return None
            runs = store.task_runs_of(session, execution_id)
            return list(dict.fromkeys(r.task_id for r in runs if r.state == State.FAILED))

    def claim(
        self, at: TaskRunCoordinates, *, owner: str, celery_task_id: str | None, requested_by: str | None = None
    ) -> ClaimedTaskRun | None:
        """Take one attempt of a task run, or None when another worker has it or it must not run."""
        with self.transaction() as session:
            # Claims and heartbeats are judged by the database's clock: skewed worker clocks would take over
            # a live claim (or keep a dead one) by the size of the skew.
            now = store.db_now(session)
            execution = store.lock_execution(session, at.execution_id)
            if execution is None:
                return None
            claimed = self._claim_in(session, execution, at, owner, celery_task_id, requested_by, now)
        return claimed

    def _claim_in(
        self,
        session: Session,
        execution: ExecutionRow,
        at: TaskRunCoordinates,
        owner: str,
        celery_task_id: str | None,
        requested_by: str | None,
        now: datetime,
        *,
        locked_row: TaskRunRow | bool | None = False,
    ) -> ClaimedTaskRun | None:
        """Claim in the caller's transaction, which holds the execution's lock.

        `locked_row`: the task run as the caller just read it with its lock (None: absent); False to read it here.
        """
        reapplied = False
        if State(execution.state) in (State.FAILED, State.KILLED):
            reapplied = self._reapply(session, execution, at, celery_task_id, requested_by)
            if reapplied:
                at = TaskRunCoordinates(at.execution_id, at.task_id, at.parent_id, at.iteration, at.attempt + 1)
        flow = self.flow_of_execution(session, execution)
        if State(execution.state) is not State.RUNNING and not (
            # A paused execution still lets sibling Approvals reach their own pause (Kestra's PAUSING).
            State(execution.state) is State.PAUSED and approval_tasks.runs_while_paused(session, flow, at)
        ):
            return None
        task = flow.task(at.task_id)
        if locked_row is False or reapplied:  # a re-apply moves to the next attempt's coordinates
            row = store.get_task_run(session, at.task_run_id, lock=True)
        else:
            row = locked_row or None
        if at.parent_id is not None and (row is None or not State(row.state).is_terminal):
            parent = store.get_task_run(session, at.parent_id)
            if parent is not None and State(parent.state).is_terminal:
                return None  # its parent ended (interrupted by a sibling's failure): nothing starts under it
        attempt_record = {
            "state": {"current": str(State.RUNNING), "histories": [{"state": "RUNNING", "date": store.iso(now)}]},
            "celeryTaskId": celery_task_id,
            "worker": owner,
        }
        if row is None:
            value = self._iteration_value(session, at)
            row = TaskRunRow(
                id=at.task_run_id,
                execution_id=at.execution_id,
                task_id=at.task_id,
                parent_id=at.parent_id,
                iteration=at.iteration,
                value=value,
                state=str(State.RUNNING),
                state_history=[{"state": str(State.RUNNING), "date": store.iso(now)}],
                attempt=at.attempt,
                attempts=[attempt_record],
                outputs=None,
                decision=None,
                retry_at=None,
                claim_owner=owner,
                heartbeat_at=now,
                created_at=now,
                updated_at=now,
            )
            if not store.create_task_run(session, row, actor=f"worker:{owner}"):
                return None
        elif not self._reclaim(session, row, at, owner, attempt_record, now):
            return None
        store.touch_execution(session, at.execution_id, now)
        runs = store.task_runs_for_variables(session, at.execution_id)
        variables = execution_variables(execution, flow, task, row, runs)
        variables["envs"], variables["globals"] = dict(self.settings.envs), dict(self.settings.globals_)
        return ClaimedTaskRun(at, owner, flow, task, variables, reapplied=reapplied)

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
    ) -> tuple[Verdict, PlanNode | None, bool]:
        """Claim, run and record consecutive inline task runs, then their parent's join, in one transaction.

        `run` is pure (TaskType.inline): nothing happens outside this transaction, so a crash anywhere
        leaves nothing behind and a redelivery starts over. Task runs already ended (a redelivery after
        commit, or a re-apply of the whole message) are passed over; the first that cannot be claimed or
        does not succeed stops the rest, as a chain link's `stop` verdict would. `skip_runs` (the chain's
        previous link stopped) leaves only the join. Returns the verdict, the plan the join starts (a
        next phase), and whether a failed task run was re-applied (its chain continuation is gone).
        """
        reapplied = False
        verdict = Verdict.STOP if skip_runs else Verdict.OK
        with self.transaction() as session:
            now = store.db_now(session)
            execution = store.lock_execution(session, execution_id)
            if execution is None:
                return Verdict.STOP, None, False
            for at in () if skip_runs else runs:
                existing = store.get_task_run(session, at.task_run_id, lock=True)
                if existing is not None and existing.attempt == at.attempt and State(existing.state) in _ENDED_OK:
                    continue  # done by an earlier delivery of this message
                claimed = self._claim_in(
                    session, execution, at, owner, celery_task_id, requested_by, now, locked_row=existing
                )
                if claimed is None:
                    verdict = Verdict.STOP
                    break
                reapplied = reapplied or claimed.reapplied
                row = session.get(TaskRunRow, claimed.coordinates.task_run_id)
                assert row is not None  # claimed just now, in this transaction
                session.info["task_types"] = self._task_types(claimed.flow)
                verdict = self.finish_locked(
                    session, execution, row, claimed.task, claimed.flow, run(claimed), actor=f"worker:{owner}"
                )
                if verdict != Verdict.OK:
                    break
            if not join:
                return verdict, None, reapplied
            parent_id = runs[0].parent_id if runs else None
            joined, plan = self._join_in(session, execution, parent_id, actor="system:join")
        return joined, plan, reapplied

    def _reapply(
        self,
        session: Session,
        execution: ExecutionRow,
        at: TaskRunCoordinates,
        celery_task_id: str | None,
        requested_by: str | None,
    ) -> bool:
        """A failed attempt's own message, sent again under a new Celery id, asks for another attempt.

        Redeliveries keep their Celery id and are ignored. A re-apply restarts this task run (and its
        failed parents) and the execution, in this transaction; the claim then takes the next attempt.
        """
        row = store.get_task_run(session, at.task_run_id, lock=True)
        if row is None or celery_task_id is None or row.attempt != at.attempt:
            return False
        if State(row.state) not in (State.FAILED, State.KILLED) or not row.attempts:
            return False
        if row.attempts[-1].get("celeryTaskId") == celery_task_id:
            return False
        flow = self.flow_of_execution(session, execution)
        runs = list(store.task_runs_of(session, execution.id))
        by_id = {r.id: r for r in runs}
        failed = [row]
        parent = by_id.get(row.parent_id or "")
        while parent is not None:
            if State(parent.state) in (State.FAILED, State.KILLED):
                failed.append(parent)
            parent = by_id.get(parent.parent_id or "")
        actor = requested_by or f"operator:reapply:{celery_task_id}"
        operations.restart_task_runs(session, flow, runs, failed, actor=actor)
        store.record_transition(
            session, execution, State.RESTARTED, actor=actor, values={"restarts": execution.restarts + 1}
        )
        store.record_transition(session, execution, State.RUNNING, actor=actor)
        return True

    @staticmethod
    def _iteration_value(session: Session, at: TaskRunCoordinates) -> str | None:
        """A loop child's `taskrun.value`: its iteration's value (other task runs have none, as in Kestra)."""
        if at.parent_id is None or at.iteration is None:
            return None
        parent = store.get_task_run(session, at.parent_id)
        values = (parent.decision or {}).get("values") if parent is not None else None
        if isinstance(values, list) and at.iteration < len(values):
            item = values[at.iteration]
            return item if isinstance(item, str) else json.dumps(item, separators=(",", ":"))
        return None

    def _reclaim(
        self,
        session: Session,
        row: TaskRunRow,
        at: TaskRunCoordinates,
        owner: str,
        attempt_record: dict[str, Any],
        now: datetime,
    ) -> bool:
        state = State(row.state)
        stale_before = now - timedelta(seconds=self.settings.stale_after_s)
        if state is State.RUNNING and row.attempt == at.attempt:
            if row.heartbeat_at is not None and row.heartbeat_at > stale_before:
                return False  # a live worker has it: this delivery is a duplicate
            if row.decision and not (row.decision.get("inline") or row.decision.get("sleep_until")):
                # Decided (a flowable's branch, a resumed Pause, a waiting Subflow): the planner continues it
                # from the database; a late redelivery must not decide again (pause twice, start a second child).
                # A Sleep's recorded end is no decision: its next claim only reads it back.
                return False
            if store.db_started_at(session) > stale_before:
                # The database restarted less than a staleness window ago: a live claimant may not have been
                # able to heartbeat yet, and its attempt may have finished (it is retrying to record it).
                return False
            # The claimant stopped heartbeating (worker death), or parked a long Sleep: take the attempt over.
            store.append_audit(
                session,
                row.execution_id,
                actor=f"worker:{owner}",
                action="task_run.woken" if row.claim_owner is None else "task_run.taken_over",
                subject=row.id,
                payload={"task_id": row.task_id, "attempt": row.attempt, "previous_owner": row.claim_owner},
                at=now,
            )
            row.claim_owner, row.heartbeat_at = owner, now
            return True
        if state in (State.RETRYING, State.RESTARTED) and at.attempt == row.attempt + 1:
            if state is State.RETRYING and row.retry_at is not None and row.retry_at > now:
                return False
            store.record_transition(
                session,
                row,
                State.RUNNING,
                actor=f"worker:{owner}",
                values={
                    "attempt": at.attempt,
                    "attempts": [*row.attempts, attempt_record],
                    "retry_at": None,
                    "claim_owner": owner,
                    "heartbeat_at": now,
                },
                at=now,
            )
            return True
        return False

    def execution_location(self, execution_id: str) -> tuple[str, str] | None:
        """The (namespace, flow id) of an execution, for the namespace checks of tasks that name one by id."""
        with read_only(self.sessions) as session:
            row = store.get_execution(session, execution_id)
            return (row.namespace, row.flow_id) if row is not None and row.tenant == self.settings.tenant else None

    def error_logs(self, execution_id: str) -> list[dict[str, Any]]:
        """Kestra's `errorLogs()`: the execution's ERROR log lines so far."""
        with read_only(self.sessions) as session:
            return [
                {
                    "taskId": r.task_id,
                    "taskRunId": r.task_run_id,
                    "message": r.message,
                    "level": r.level,
                    "timestamp": store.iso(r.at),
                }
                for r in store.error_log_lines(session, execution_id)
            ]

    def task_run_state(self, task_run_id: str) -> str | None:
        with read_only(self.sessions) as session:
            row = store.get_task_run(session, task_run_id)
            return row.state if row is not None else None

    def task_run_attempt(self, task_run_id: str) -> int:
        """The attempt number the next claim of this task run must carry (current + 1 once it ended)."""
        with read_only(self.sessions) as session:
            row = store.get_task_run(session, task_run_id)
            if row is None:
                return 1
            return row.attempt + 1 if State(row.state) in (State.RETRYING, State.RESTARTED) else row.attempt

    def set_running_outputs(self, claimed: ClaimedTaskRun, outputs: dict[str, Any]) -> None:
        """Outputs of a flowable this worker owns, set before its join (WorkingDirectory's outputFiles)."""
        with self.transaction() as session:
            store.lock_execution(session, claimed.coordinates.execution_id)
            row = store.get_task_run(session, claimed.coordinates.task_run_id, lock=True)
            if row is not None and still_ours(row, claimed):
                row.outputs = {**(row.outputs or {}), **outputs}

    def heartbeat(self, at: TaskRunCoordinates, owner: str) -> None:
        with self.transaction() as session:
            store.heartbeat(session, at.task_run_id, owner)

    def finish(self, claimed: ClaimedTaskRun, outcome: TaskOutcome) -> Verdict:
        """Record an attempt's outcome; retry, allowFailure and allowWarning decide the task run's state."""
        at = claimed.coordinates
        with self.transaction() as session:
            execution = store.lock_execution(session, at.execution_id)
            row = store.get_task_run(session, at.task_run_id, lock=True)
            if execution is None or row is None or not still_ours(row, claimed):
                return Verdict.STOP  # taken over after we stalled: the new owner reports
            session.info["task_types"] = self._task_types(claimed.flow)  # for the hooks' labels
            return self.finish_locked(
                session, execution, row, claimed.task, claimed.flow, outcome, actor=f"worker:{claimed.owner}"
            )

    def finish_locked(
        self,
        session: Session,
        execution: ExecutionRow,
        row: TaskRunRow,
        task: TaskSpec,
        flow: Flow,
        outcome: TaskOutcome,
        *,
        actor: str,
    ) -> Verdict:
        """End the current attempt of a running task run (caller holds the execution lock)."""
        now = store.utcnow()
        cap = self.settings.max_log_line_chars
        store.insert_log_lines(session, [log_row(execution, row, record, cap) for record in outcome.logs])
        values: dict[str, Any] = {
            "attempts": store.close_attempt(row.attempts, outcome.state, now),
            "claim_owner": None,
        }
        if outcome.outputs is not None:
            values["outputs"] = outcome.outputs
        payload = {"error": outcome.error} if outcome.error else {}
        retry = task.retry or flow.retry
        if outcome.state is State.FAILED and retry is not None and retry.behavior == "CREATE_NEW_EXECUTION":
            # The attempts are executions: the bounds count from the first one of the chain.
            first_start = execution.original_created_at or execution.created_at
            due = next_attempt_at(retry, execution.restarts + 1, first_start, now) if outcome.retryable else None
            if due is not None:
                store.record_transition(session, row, State.FAILED, actor=actor, payload=payload, values=values, at=now)
                operations.retry_in_new_execution(self, session, execution, flow, due, actor=actor)
                return Verdict.STOP
        elif outcome.state is State.FAILED:
            first_start = _attempt_start(row.attempts[0]) or row.created_at
            due = next_attempt_at(retry, row.attempt, first_start, now) if outcome.retryable else None
            if due is not None:
                values["retry_at"] = due
                store.record_transition(session, row, State.RETRYING, actor=actor, payload=payload, values=values)
                return Verdict.STOP
        state = outcome.state
        if state is State.SUCCESS and row.attempt > 1 and retry is not None and retry.warning_on_retry:
            state = State.WARNING  # `warningOnRetry`: success that needed retries is flagged
        final = apply_allowances(state, allow_failure=task.allow_failure, allow_warning=task.allow_warning)
        store.record_transition(session, row, final, actor=actor, payload=payload, values=values, at=now)
        if task.type == "Publish" and outcome.state in (State.SUCCESS, State.WARNING):
            events.record_published(self, session, execution, row, outcome.outputs)  # the outbox, in this transaction
        return Verdict.STOP if final.is_failure else Verdict.OK

    def decide(
        self,
        claimed: ClaimedTaskRun,
        decision: dict[str, Any],
        outputs: dict[str, Any] | None = None,
        *,
        logs: tuple[LogRecord, ...] = (),
    ) -> PlanNode | None:
        """Record a flowable's decision (branch taken, values) and return the plan of its body.

        `logs`: what the attempt logged so far, kept with the decision (an agent pausing for an approval
        reports nothing more, so its logs would be lost otherwise).
        """
        at = claimed.coordinates
        with self.transaction() as session:
            execution = store.lock_execution(session, at.execution_id)
            row = store.get_task_run(session, at.task_run_id, lock=True)
            if row is None or not still_ours(row, claimed):
                return None
            if logs and execution is not None:
                cap = self.settings.max_log_line_chars
                store.insert_log_lines(session, [log_row(execution, row, record, cap) for record in logs])
            row.decision = decision
            if outputs is not None:
                row.outputs = outputs
            session.flush()
            store.append_audit(
                session,
                at.execution_id,
                actor=f"worker:{claimed.owner}",
                action="task_run.decided",
                subject=row.id,
                payload={"task_id": row.task_id, "decision": decision},
            )
            if decision.get("pause"):
                due = decision.get("due")
                due_at = datetime.fromisoformat(due) if isinstance(due, str) else None
                operations.pause_task_run(
                    session, session.info["execution"], row, due=due_at, actor=f"worker:{claimed.owner}"
                )
                return None
            snap = self.snapshot(session, at.execution_id)
            return inside(claimed.flow, claimed.task, snap.task_runs[row.id], snap)

    # ---- joins ----------------------------------------------------------------------------------

    def join(self, execution_id: str, parent_id: str | None, *, actor: str) -> tuple[Verdict, PlanNode | None]:
        """Finish a flowable (or the execution) whose children ended, or start its next phase.

        Returns the verdict for the chain and, when a phase starts, the plan the join replaces itself with.
        """
        with self.transaction() as session:
            execution = store.lock_execution(session, execution_id)
            if execution is None:
                return Verdict.STOP, None
            return self._join_in(session, execution, parent_id, actor=actor)

    def _join_in(
        self, session: Session, execution: ExecutionRow, parent_id: str | None, *, actor: str
    ) -> tuple[Verdict, PlanNode | None]:
        """`join` in the caller's transaction, which holds the execution's lock."""
        execution_id = execution.id
        # A paused execution still parks an Approval (a Pause) whose `onWait` (`onPause`) just ended, so
        # sibling approvals all wait for review at once; nothing else moves until it is resumed.
        paused = State(execution.state) is State.PAUSED and parent_id is not None
        if State(execution.state) is not State.RUNNING and not paused:
            return Verdict.STOP, None
        flow = self.flow_of_execution(session, execution)
        parent_row = store.get_task_run(session, parent_id, lock=True) if parent_id else None
        if parent_id and (parent_row is None or State(parent_row.state) is not State.RUNNING):
            return Verdict.STOP, None
        spec = flow.task(parent_row.task_id) if parent_row else None
        lists = child_lists(flow, spec, (parent_row.decision or {}) if parent_row else {})
        snap = self.snapshot(session, execution_id)
        ending = approval_tasks.ending_state(snap)
        if ending is not None:
            # An Approval ends the execution (SUCCEED, CANCEL): nothing new starts, what runs finishes,
            # then the flow's `finally` runs and the execution takes that state.
            lists = dataclasses.replace(lists, main=(), errors=())
        # An Approval's `finally` waits for its decided branch, not for `onWait`.
        waiting = approval_tasks.is_waiting(spec, parent_row)
        decision = decide_join(dataclasses.replace(lists, finally_=()) if waiting else lists, parent_id, snap)
        if waiting and isinstance(decision, Complete):
            assert parent_row is not None and spec is not None
            # The task's own allowFailure lets a failed `onWait` still pause (Kestra's resolveWaitState).
            wait_state = apply_allowances(decision.state, allow_failure=spec.allow_failure, allow_warning=False)
            if not wait_state.is_failure:
                approval_tasks.pause_after_wait(session, execution, parent_row, spec, actor=actor)
                return Verdict.STOP, None
            if paused:
                return Verdict.STOP, None
            decision = decide_join(lists, parent_id, snap)  # `onWait` failed: `errors`, then `finally`
        if paused:
            return Verdict.STOP, None
        if isinstance(decision, Complete) and approval_tasks.decided(spec, parent_row) is not None:
            # A decided Approval's state is its branch's (and finally's): `onWait` no longer counts.
            decision = Complete(approval_tasks.branch_state(spec, lists, snap.children(parent_id)))
        if isinstance(decision, Wait):
            return Verdict.STOP, None
        if isinstance(decision, StartPhase):
            plan = phase(flow, decision.lanes, parent_id, snap)
            if plan is None or not has_runs(plan):
                # A join that would only call itself again makes no progress: leave it to the sweeper
                # (a stalled execution is re-planned from the database) instead of spinning the broker.
                logger.warning("join of %s in %s has nothing to start", parent_id, execution_id)
                return Verdict.STOP, None
            return Verdict.OK, plan
        assert isinstance(decision, Complete)
        retried = (
            parent_row is not None
            and spec is not None
            and decision.state is State.FAILED
            and spec.retry is not None
            and self._retry_flowable(session, parent_row, spec, actor=actor)
        )
        if retried:
            return Verdict.STOP, None  # the sweeper dispatches the failed children's next attempts
        if parent_row is not None and spec is not None and spec.type in loops.LOOP_TYPES:
            again = not decision.state.is_failure and loops.next_iteration(
                self, session, execution, flow, spec, parent_row
            )
            if again:
                return Verdict.STOP, None  # the sweeper dispatches the next iteration when it is due
            decision = Complete(loops.final_state(spec, parent_row, decision.state))
        if parent_row is not None and spec is not None:
            # AllowFailure is allowFailure made into a flowable: its children's failure is a warning.
            final = apply_allowances(
                child_failure.flowable_state(spec, decision.state),
                allow_failure=spec.allow_failure or spec.type == "AllowFailure",
                allow_warning=spec.allow_warning,
            )
            if loop_scope.keeps_failures(spec) and final.is_failure:
                final = State.SUCCESS  # Kestra's LoopCaseTest: failed iterations, a SUCCESS Loop
            final, outcome = approval_tasks.settle(spec, parent_row, final)
            values: dict[str, Any] = {"claim_owner": None}
            if spec.type == loop_scope.LOOP:
                runs = store.task_runs_of(session, execution_id)
                try:
                    values["outputs"] = loop_scope.final_outputs(
                        spec,
                        parent_row,
                        runs,
                        lambda run: execution_variables(execution, flow, spec, run, runs),
                        self._iteration_file(execution, parent_row)
                        if loop_scope.stores_outputs(spec, parent_row)
                        else None,
                    )
                except ExpressionError as e:
                    final = State.FAILED
                    store.insert_log_lines(
                        session, [log_row(execution, parent_row, LogRecord("ERROR", str(e), store.utcnow()))]
                    )
            attempts = parent_row.attempts
            if attempts and attempts[-1].get("state", {}).get("current") == str(State.RUNNING):
                # A flowable's attempt spans its children: it ends with them (it stayed RUNNING, with no end date).
                values["attempts"] = store.close_attempt(attempts, final, store.utcnow())
            if outcome is not None and approval_tasks.in_loop(flow, snap, parent_row):
                outcome = None  # a Loop iteration is the scope it ends: the Loop and the flow go on
            if outcome is State.KILLED:
                # KILL on a decision: the whole execution is killed, running siblings too, once this commits.
                session.info.setdefault("approval_outcomes", []).append((execution_id, outcome))
            elif outcome is not None:
                values["decision"] = {**(parent_row.decision or {}), "ends": str(outcome)}
            store.record_transition(session, parent_row, final, actor=actor, values=values)
            if outcome is not None or ending is not None:
                return Verdict.STOP, None
            return (Verdict.STOP if final.is_failure else Verdict.OK), None
        final_state = ending if ending is not None and not decision.state.is_failure else decision.state
        self._end_execution(session, execution, flow, final_state, actor=actor)
        return Verdict.STOP, None

    def _iteration_file(self, execution: ExecutionRow, loop_run: TaskRunRow) -> Callable[[int, dict[str, Any]], str]:
        """Where a storing Loop keeps one iteration's outputs: a JSON (so ION text) file of the task run."""
        prefix = storage.execution_prefix(execution.namespace, execution.flow_id, execution.id)

        def keep(index: int, outputs: dict[str, Any]) -> str:
            path = prefix / "tasks" / loop_run.task_id / loop_run.id / f"iteration-{index}.ion"
            return storage.write(self.settings.data_dir, path, json.dumps(outputs, ensure_ascii=False).encode())

        return keep

    def _retry_flowable(self, session: Session, parent: TaskRunRow, spec: TaskSpec, *, actor: str) -> bool:
        """A flowable's `retry`: its failed children get another attempt while the policy allows."""
        now = store.utcnow()
        retries = int((parent.decision or {}).get("retries", 0))
        due = next_attempt_at(spec.retry, retries + 1, parent.created_at, now)
        if due is None:
            return False
        failed = [r for r in store.task_runs_of(session, parent.execution_id) if r.parent_id == parent.id]
        failed = [r for r in failed if State(r.state) is State.FAILED]
        if not failed:
            return False
        session.execute(
            update(TaskRunRow)
            .where(TaskRunRow.id == parent.id)
            .values(decision={**(parent.decision or {}), "retries": retries + 1})
        )
        for child in failed:
            store.record_transition(session, child, State.RETRYING, actor=actor, values={"retry_at": due})
        return True

    def _end_execution(
        self, session: Session, execution: ExecutionRow, flow: Flow, state: State, *, actor: str
    ) -> None:
        outputs: dict[str, Any] | None = None
        payload: dict[str, Any] = {}
        if flow.outputs:
            try:
                outputs = flow_outputs(execution, flow, store.task_runs_of(session, execution.id))
            except ExpressionError as e:
                state, payload = State.FAILED, {"error": f"flow outputs: {e.message}"}
                error = LogRecord("ERROR", str(e), store.utcnow())
                store.insert_log_lines(session, [log_row(execution, None, error, self.settings.max_log_line_chars)])
        store.record_transition(session, execution, state, actor=actor, payload=payload, values={"outputs": outputs})
        if execution.parent_task_run_id is not None:
            session.info.setdefault("ended_children", []).append(execution.id)

    # ---- execution control (see orchestrator.engine.operations) -----------------------------------------

    def kill(self, execution_id: str, *, actor: str) -> ExecutionRow:
        return operations.kill(self, execution_id, actor=actor)

    def pause(self, execution_id: str, *, actor: str) -> ExecutionRow:
        return operations.pause(self, execution_id, actor=actor)

    def resume(self, execution_id: str, inputs: Mapping[str, Any], *, actor: str) -> ExecutionRow:
        return operations.resume(self, execution_id, inputs, actor=actor)

    def restart(self, execution_id: str, *, actor: str) -> ExecutionRow:
        return operations.restart(self, execution_id, actor=actor)

    def set_labels(self, execution_id: str, labels: list[dict[str, str]], *, actor: str) -> list[dict[str, str]]:
        """Add or override execution labels (the Labels task, the API); audited."""
        with self.transaction() as session:
            execution = store.lock_execution(session, execution_id)
            if execution is None:
                raise NotFound("execution", execution_id)
            merged = _merge_labels(list(execution.labels), labels)
            _check_labels(merged, self.settings)
            store.update_labels(session, execution, merged)
            store.append_audit(
                session, execution_id, actor=actor, action="execution.labels", subject=None, payload={"labels": labels}
            )
            return merged

    def fetch_logs(
        self, execution_id: str, *, task_ids: Sequence[str] = (), min_level: str = "INFO"
    ) -> list[dict[str, Any]]:
        """Log lines of an execution (the Fetch task): by task ids, at or above a level."""
        order = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"]
        floor = order.index(min_level) if min_level in order else 2
        with read_only(self.sessions) as session:
            rows = store.log_lines_of(session, execution_id)
        return [
            {"taskId": r.task_id, "level": r.level, "message": r.message, "timestamp": store.iso(r.at)}
            for r in rows
            if (not task_ids or r.task_id in task_ids) and (order.index(r.level) if r.level in order else 2) >= floor
        ]

    def trigger_webhook(
        self, namespace: str, flow_id: str, key: str, variables: dict[str, Any], *, actor: str
    ) -> tuple[ExecutionRow | None, dict[str, Any]]:
        """Start an execution from a Webhook trigger whose (rendered) key matches; NotFound otherwise, and
        no execution (None) when the trigger's `conditions` (or Kestra 2's `when`) do not hold.

        Unknown flows, disabled triggers and wrong keys all answer the same NotFound, so a caller
        cannot probe which flows exist.
        """
        with read_only(self.sessions) as session:
            row = store.latest_flow(session, self.settings.tenant, namespace, flow_id)
        flow = self.flow_of(row) if row is not None and not row.deleted else None
        trigger = next((t for t in (flow.triggers if flow else ()) if _webhook_matches(t, flow, key)), None)
        if flow is None or trigger is None:
            raise NotFound("webhook", f"{namespace}/{flow_id}/{key}")
        if not kestra2.when_holds(trigger.properties.get("when"), {"trigger": variables}):
            return None, dict(trigger.properties)  # Kestra 2's `when` refuses the event: nothing starts
        conditions = trigger.properties.get("conditions") or []
        if isinstance(conditions, list) and not schedule_conditions_hold(
            conditions, store.utcnow(), {"trigger": variables, "flow": {"id": flow.id, "namespace": flow.namespace}}
        ):
            return None, dict(trigger.properties)  # Kestra answers 204 and starts nothing
        execution = self.submit(
            namespace,
            flow_id,
            inputs=trigger.properties.get("inputs") or {},
            actor=actor,
            trigger={"id": trigger.id, "type": trigger.type_name, "variables": variables},
        )
        return execution, dict(trigger.properties)

    def replay(
        self,
        execution_id: str,
        *,
        task_run_id: str | None = None,
        revision: int | None = None,
        inputs: Mapping[str, Any] | None = None,
        actor: str,
    ) -> ExecutionRow:
        return operations.replay(
            self, execution_id, task_run_id=task_run_id, revision=revision, inputs=inputs, actor=actor
        )

    def change_task_run_state(self, execution_id: str, task_run_id: str, state: State, *, actor: str) -> ExecutionRow:
        return operations.change_task_run_state(self, execution_id, task_run_id, state, actor=actor)

    def change_status(self, execution_id: str, state: State, *, actor: str) -> ExecutionRow:
        return operations.change_status(self, execution_id, state, actor=actor)

    def start_subflow(self, claimed: ClaimedTaskRun, **request: Any) -> Verdict:
        return subflows.start(self, claimed, **request)

    def sleep_end(self, claimed: ClaimedTaskRun, duration: timedelta) -> sleeps.SleepEnd | None:
        return sleeps.begin(self, claimed, duration)

    def park_sleep(self, claimed: ClaimedTaskRun, due: datetime, logs: tuple[LogRecord, ...]) -> Verdict:
        sleeps.park(self, claimed, due, logs)
        return Verdict.STOP

    def start_subflows(self, claimed: ClaimedTaskRun, **request: Any) -> Verdict:
        """One child execution per batch of inputs (ForEachItem); the task run ends when they all have."""
        return subflows.start_many(self, claimed, **request)

    def child_execution_outputs(self, parent_task_run_id: str) -> list[dict[str, Any]]:
        with self.transaction() as session:
            return store.child_execution_outputs(session, parent_task_run_id)

    # ---- LLM ledger (ai pool) -------------------------------------------------------------------

    def llm_ledger(self) -> LlmLedger:
        """The record of model calls (tokens, cost, audit, replay) over this engine's database."""
        return LlmLedger(self.sessions, self.settings.llm)


def _webhook_matches(trigger: Any, flow: Flow | None, key: str) -> bool:
    if flow is None or trigger.type != "Webhook" or trigger.disabled:
        return False
    expected = str(trigger.properties.get("key", ""))
    if has_expression(expected):
        try:
            expected = render(expected, {"flow": {"id": flow.id, "namespace": flow.namespace}})
        except ExpressionError:
            # A key that cannot render matches nothing: an anonymous caller gets the 404 of a wrong key,
            # not the key's template in an error message.
            logger.warning("webhook %s of %s.%s: its key does not render", trigger.id, flow.namespace, flow.id)
            return False
    # Bytes: compare_digest refuses non-ASCII str, and that TypeError (a 500) told real webhooks from unknown ones.
    return bool(expected) and hmac.compare_digest(expected.encode("utf-8"), key.encode("utf-8", "surrogatepass"))


def _check_labels(labels: list[dict[str, str]], settings: Settings) -> None:
    """Labels are stored per execution, indexed and copied into the audit: bound their number and size."""
    if len(labels) > settings.max_labels:
        raise LabelsInvalid("labels", f"{len(labels)} labels, at most {settings.max_labels} (CHORUS_MAX_LABELS)")
    for index, label in enumerate(labels):
        if len(label["key"]) > settings.max_label_key_chars:
            raise LabelsInvalid(f"labels[{index}].key", f"longer than {settings.max_label_key_chars} characters")
        if len(label["value"]) > settings.max_label_value_chars:
            raise LabelsInvalid(f"labels[{index}].value", f"longer than {settings.max_label_value_chars} characters")


def _merge_labels(base: list[dict[str, str]], extra: list[dict[str, str]]) -> list[dict[str, str]]:
    """Later labels override earlier ones with the same key, keeping first-seen order."""
    merged: dict[str, str] = {}
    for label in [*base, *extra]:
        merged[label["key"]] = label["value"]
    return [{"key": k, "value": v} for k, v in merged.items()]


def _attempt_start(attempt: Mapping[str, Any]) -> datetime | None:
    histories = attempt.get("state", {}).get("histories", [])
    return datetime.fromisoformat(histories[0]["date"].replace("Z", "+00:00")) if histories else None
