"""The Celery tasks every pool runs: claim and run a task run, run inline ones, enter a flowable, join a parent.

A task body never trusts its message: it claims the task run in Postgres by compare-and-set, so a
redelivery, a Flower re-apply or a sweeper re-dispatch either takes over a dead claim or does
nothing. Each link returns a verdict (`ok`/`stop`) that Celery hands to the next link of its chain.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn, TypeVar

from celery import Celery, Task, states
from celery.app.task import Context
from celery.backends.base import BaseKeyValueStoreBackend
from celery.exceptions import Reject
from celery.signals import worker_process_init, worker_process_shutdown

from orchestrator.celery_app import (
    ACTOR_HEADER,
    ENTER_TASK_RUN,
    JOIN_TASK_RUN,
    PLANNED_HEADER,
    RUN_INLINE,
    RUN_TASK_RUN,
)
from orchestrator.core.durations import format_duration, parse_duration
from orchestrator.core.errors import ChorusError, TaskFailed
from orchestrator.core.expressions import is_true
from orchestrator.core.plan import Chain, PlanNode
from orchestrator.core.states import State
from orchestrator.engine import DATABASE_UNAVAILABLE, ClaimedTaskRun, Engine, TaskOutcome, TaskRunCoordinates, Verdict
from orchestrator.engine.compiler import chain_rest, to_canvas
from orchestrator.engine.sleeps import INLINE_LIMIT
from orchestrator.hooks import EngineHooks
from orchestrator.settings import Settings
from orchestrator.triggers.wiring import engine_from_settings
from workers import drain
from workers.agent import AgentPaused, AgentTakenOver, prepare_tool_run, run_agent
from workers.attempts import LocalRunner, decide_claimed, run_claimed
from workers.attempts import failure as _failure
from workers.context import TaskContext
from workers.deadline import deadline, timeout_error
from workers.foreachitem import start_batches
from workers.functions import EngineFunctions
from workers.ledger_tools import served_tool_outcome
from workers.subflow import start_subflow
from workers.workdir import run_working_directory

logger = logging.getLogger(__name__)

#: How long a worker keeps trying to record a finished attempt while the database is unreachable.
_RECORD_PATIENCE_S = 300.0


class _EngineHolder:
    """One Engine per worker process, built lazily after fork (connections must not cross a fork)."""

    def __init__(self) -> None:
        self.settings: Settings | None = None
        self.app: Celery | None = None
        self.hooks: list[EngineHooks] = []
        self._engine: Engine | None = None
        self._lock = threading.Lock()

    def get(self) -> Engine:
        with self._lock:
            if self._engine is None:
                assert self.settings is not None and self.app is not None, "register_tasks() was not called"
                # A threads pool runs `worker_concurrency` tasks at once in this process, each with its
                # transaction and its heartbeat: one connection each, so none waits for the pool.
                threads = self.settings.worker_pool == "threads"
                pool_size = self.settings.worker_concurrency if threads else 2
                # No pre-ping: a round trip per transaction saved; a dead connection after a database restart
                # fails one transaction (an outcome's recording is retried, `_until_recorded`) and the pool.
                self._engine = engine_from_settings(
                    self.settings,
                    self.app,
                    pool_size=pool_size,
                    hooks=self.hooks,
                    pre_ping=False,
                    local_runner=LocalRunner(),
                )
            return self._engine

    def reset(self) -> None:
        self._engine = None

    def close(self) -> None:
        """Stop what the engine started (its flows listener), if this process built one."""
        with self._lock:
            engine, self._engine = self._engine, None
        if engine is not None:
            engine.close()


_holder = _EngineHolder()


def current_engine() -> Engine:
    """This worker process's Engine (built on first use after fork); hooks attach to it."""
    return _holder.get()


def _after_fork(**_: Any) -> None:
    _holder.reset()


def _process_shutdown(**_: Any) -> None:
    _holder.close()


worker_process_init.connect(_after_fork)
worker_process_shutdown.connect(_process_shutdown)


def _owner(task: Task) -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{task.request.id}"


def fence_after_s(settings: Settings) -> float:
    """How long an attempt may go without a confirmed heartbeat before its worker stops it.

    The sweeper takes a claim over `stale_after_s` after its last heartbeat reached the database; a worker counts
    from the moment it saw that heartbeat committed, a little later. Stopping one heartbeat interval short of the
    window stops the body before any take-over can start a second copy as long as a commit's answer takes less
    than an interval, and leaves a healthy attempt (a heartbeat confirmed every interval) untouched as long as
    it takes less than `stale_after_s - 2 * heartbeat_interval_s`. The floor keeps a window configured barely
    above the interval from fencing healthy attempts.
    """
    return max(settings.stale_after_s - settings.heartbeat_interval_s, 1.5 * settings.heartbeat_interval_s)


class _Heartbeat:
    """Keeps a long attempt's claim fresh so the sweeper does not hand it to another worker, and fences the
    attempt when that cannot be confirmed: a heartbeat refused (the claim is someone else's now) or none
    committed for `fence_after_s` (the database is unreachable from here, perhaps not from the sweeper) stops
    the task body (drain.fence), so a partitioned worker never runs an attempt beside its take-over.

    A heartbeat blocked on a connection that hangs (a network partition drops packets) cannot report anything:
    a second thread watches the time since the last confirmed one.
    """

    def __init__(self, engine: Engine, claimed: ClaimedTaskRun) -> None:
        self._stop = threading.Event()
        self._confirmed_at = time.monotonic()  # the claim was just taken: as good as a heartbeat
        self._lost = False
        self._fence_after_s = fence_after_s(engine.settings)
        self._claimed = claimed
        self._thread = threading.Thread(target=self._beat, args=(engine, claimed), daemon=True)
        self._watchdog = threading.Thread(target=self._watch, args=(engine.settings.heartbeat_interval_s,), daemon=True)

    def _beat(self, engine: Engine, claimed: ClaimedTaskRun) -> None:
        while not self._stop.wait(engine.settings.heartbeat_interval_s):
            try:
                if engine.heartbeat(claimed.coordinates, claimed.owner):
                    self._confirmed_at = time.monotonic()
                else:
                    self._lost = True
                    return
            except Exception:
                logger.warning("heartbeat failed for %s", claimed.coordinates.task_run_id, exc_info=True)

    def _watch(self, interval_s: float) -> None:
        while not self._stop.wait(interval_s / 2):
            silent_s = time.monotonic() - self._confirmed_at
            if self._lost or silent_s > self._fence_after_s:
                at = self._claimed.coordinates
                why = "its claim was taken over" if self._lost else f"no heartbeat confirmed for {silent_s:.1f}s"
                if drain.fence():
                    logger.warning(
                        "stopping %s attempt %s: %s",
                        at.task_id,
                        at.attempt,
                        why,
                        extra={"execution_id": at.execution_id, "task_run_id": at.task_run_id, "action": "fenced"},
                    )
                return

    def __enter__(self) -> None:
        self._thread.start()
        self._watchdog.start()

    def __exit__(self, *_: object) -> None:
        self._stop.set()


_Recorded = TypeVar("_Recorded")


def _until_recorded(record: Callable[[], _Recorded], what: str) -> _Recorded:
    """Report an attempt that ran, retrying while the database is unreachable.

    The attempt's side effects already happened: giving up would leave its claim to expire and a
    take-over would run the task again. The claim stays ours (and heartbeating) while we wait.
    """
    deadline = time.monotonic() + _RECORD_PATIENCE_S
    pause_s = 0.2
    while True:
        try:
            return record()
        except DATABASE_UNAVAILABLE:
            if time.monotonic() > deadline:
                raise
            logger.warning("database unreachable while recording %s; retrying in %.1fs", what, pause_s)
            time.sleep(pause_s)
            pause_s = min(pause_s * 2, 5.0)


def _hand_back(engine: Engine, claimed: ClaimedTaskRun, why: str = "the worker is stopping") -> NoReturn:
    """This worker is stopping and its drain time is up, or the attempt was fenced: release the claim, re-queue
    the message.

    The attempt is not over: another worker takes the same attempt over at once (no retry is spent, nothing
    is recorded as failed). Were the release to fail (the database unreachable), the claim expires as a dead
    worker's would, and the re-queued message is passed over until then. The release only touches a claim
    still ours: a fenced attempt already taken over is left to its new owner.
    """
    try:
        engine.hand_back(claimed)
    except DATABASE_UNAVAILABLE:
        logger.warning("could not release %s while handing it back", claimed.coordinates.task_run_id, exc_info=True)
    logger.warning(
        "%s: %s attempt %s handed back to the queue",
        why,
        claimed.coordinates.task_id,
        claimed.coordinates.attempt,
        extra={
            "execution_id": claimed.coordinates.execution_id,
            "task_run_id": claimed.coordinates.task_run_id,
            "task_id": claimed.coordinates.task_id,
            "action": "task_run.handed_back",
            "attempt": claimed.coordinates.attempt,
        },
    )
    raise Reject(f"{drain.HAND_BACK_PREFIX}{why}", requeue=True)


def _finish_and_go_on(
    task: Task, engine: Engine, claimed: ClaimedTaskRun, outcome: TaskOutcome
) -> tuple[Verdict, PlanNode | None]:
    """Record an attempt's outcome and, in the same transaction, run the chain's next links that need no worker
    (the pure control tasks and joins after this task run: `Engine.finish_and_drive`).

    The links run there are taken off this Celery task's chain, so Celery sends only what remains. Returns the
    verdict to hand on and, when the drive ended in a plan of its own (a join starting a phase, a bound reached
    inside a link), that plan, which replaces the links taken (the chain keeps the rest after them).
    """
    request = task.request
    upcoming = list(reversed(request.chain or []))  # Celery keeps a chain's next link last
    links = chain_rest(claimed.coordinates.execution_id, upcoming)
    if not links:
        return engine.finish(claimed, outcome), None
    nodes = [node for link in links for node in link]
    verdict, rest = engine.finish_and_drive(claimed, outcome, Chain(tuple(nodes)))
    taken, start = len(links), len(nodes)
    if rest is not None:
        for index in range(len(links)):
            start -= len(links[-1 - index])
            if rest == Chain(tuple(nodes[start:])):  # what remains starts at a link: keep that link as sent
                taken, rest = len(links) - 1 - index, None
                break
    request.chain = list(reversed(upcoming[taken:])) or None
    if rest is None:
        _store_results(task, upcoming[:taken], verdict)
    return verdict, rest


def _store_results(task: Task, links: Sequence[Mapping[str, Any]], verdict: Verdict) -> None:
    """Store the result each link run here would have stored as a message (the last link of a chain keeps its
    result: it carries the id of a task that replaced itself, or of the chain itself), so whoever reads that id
    (Flower, `chorus retry`, an AsyncResult) finds it as before."""
    for link in links:
        options = link.get("options") or {}
        task_id = options.get("task_id")
        if options.get("ignore_result") or not task_id:
            continue
        request = Context(
            id=task_id,
            task=link.get("task"),
            args=[verdict],
            kwargs=link.get("kwargs") or {},
            hostname=task.request.hostname,
            delivery_info={"routing_key": options.get("queue")},
        )
        _store_success(task.backend, task_id, verdict, request)


def _store_success(backend: Any, task_id: str, verdict: Verdict, request: Context) -> None:
    """What `backend.store_result(task_id, verdict, SUCCESS)` writes, without its read of the id's current result
    first (Celery's guard against a lost duplicate overwriting a SUCCESS): no message of this id ever ran, and a
    redelivery of this task that took the same links stores the same SUCCESS. A round trip and a third of the
    store's client work less per finish that ran its chain's last link; other backends keep Celery's own path."""
    if not isinstance(backend, BaseKeyValueStoreBackend):
        backend.store_result(task_id, verdict, states.SUCCESS, request=request)
        return
    meta = backend._get_result_meta(result=verdict, state=states.SUCCESS, traceback=None, request=request)
    meta["task_id"] = task_id
    backend.set(backend.get_key_for_task(task_id), backend.encode(meta))


def _start_subflow(engine: Engine, claimed: ClaimedTaskRun) -> Verdict:
    ctx = TaskContext(claimed, EngineFunctions(engine, claimed))
    try:
        # Kestra's ExecutableUtils: a false runIf (`when`) skips the Subflow before its flow is even looked up.
        if claimed.task.run_if is not None and not is_true(ctx.render(claimed.task.run_if)):
            return engine.finish(claimed, TaskOutcome(State.SKIPPED))
        if claimed.task.type == "ForEachItemExecutable":
            return start_batches(ctx, engine)
        return start_subflow(ctx, engine)
    except Exception as error:
        return engine.finish(claimed, _failure(ctx, error))


def _run_sleep(engine: Engine, claimed: ClaimedTaskRun) -> Verdict:
    """A Sleep: short ends wait here, heartbeating; long ones are parked in the database (engine.sleeps)."""
    ctx = TaskContext(claimed, EngineFunctions(engine, claimed))
    try:
        if claimed.task.run_if is not None and not is_true(ctx.render(claimed.task.run_if)):
            return engine.finish(claimed, TaskOutcome(State.SKIPPED))
        duration = parse_duration(str(ctx.render(claimed.task.properties.get("duration", "PT0S"))))
    except Exception as error:
        return engine.finish(claimed, _failure(ctx, error))
    end = engine.begin_sleep(claimed, duration)
    if end is None:
        return Verdict.STOP
    if end.fresh:
        ctx.log("INFO", f"Waiting for {format_duration(duration)}")  # Kestra's own words
    remaining = end.due - claimed.clock.now()  # `due` is by the database's clock: so is the time left
    if remaining > INLINE_LIMIT:
        return engine.park_sleep(claimed, end.due, tuple(ctx.logs))
    with _Heartbeat(engine, claimed):
        time.sleep(max(remaining.total_seconds(), 0.0))
    if end.timed_out:
        assert claimed.task.timeout is not None
        return engine.finish(claimed, _failure(ctx, timeout_error(claimed.task.timeout)))
    return engine.finish(claimed, TaskOutcome(State.SUCCESS, logs=tuple(ctx.logs)))


def _run_agent(engine: Engine, claimed: ClaimedTaskRun) -> Verdict:
    """An AIAgent attempt: its tool calls run as child task runs on their pools; it may pause for an approval."""
    ctx = TaskContext(claimed, EngineFunctions(engine, claimed))
    try:
        if claimed.task.run_if is not None and not is_true(ctx.render(claimed.task.run_if)):
            return engine.finish(claimed, TaskOutcome(State.SKIPPED))
        with _Heartbeat(engine, claimed), deadline(claimed.task.timeout):
            outputs = run_agent(ctx)
    except (AgentPaused, AgentTakenOver):
        return (
            Verdict.STOP
        )  # the paused task run waits for its approver; a taken-over one reports through its new owner
    except Exception as error:
        return engine.finish(claimed, _failure(ctx, error))
    return engine.finish(claimed, TaskOutcome(State.SUCCESS, outputs=outputs, logs=tuple(ctx.logs)))


class WrongPool(ChorusError):
    """Raised when a message for a task run arrives on another pool's queue (a re-apply to the wrong queue)."""

    def __init__(self, task_run_id: str, pool: str, queue: str) -> None:
        super().__init__(
            f"task run {task_run_id} runs on pool {pool!r}, not on queue {queue!r}: refused, nothing ran; "
            f"re-apply it to queue {pool!r}"
        )


class TaskRunFailed(ChorusError):
    """Raised as a Celery task's end when a task run it ran is FAILED, so Flower shows a FAILURE with the error."""


class ExecutionFailed(ChorusError):
    """Raised as the end of the Celery task that joined an execution which ended FAILED (Flower shows a FAILURE)."""


def _has_downstream(task: Task) -> bool:
    """Whether Celery still has work after this task: chain links, a chord's callback, a group, link callbacks.

    Chorus's links pass a verdict (`stop`) down a chain, and its joins run after a failure (errors, finally,
    allowFailure are decided there); a raise would skip them. Only a Celery task with nothing after it (the last
    link of an execution's chain, a re-applied message) reports a failed task run as a Celery FAILURE.
    """
    request = task.request
    return bool(request.chain or request.chord or request.group or request.callbacks)


def _report_failures(
    task: Task,
    engine: Engine,
    failures: list[tuple[TaskRunCoordinates, str | None]],
    *,
    execution_id: str,
    joined_execution: bool = False,
) -> None:
    """Raise when this message ends a failure and nothing follows it in Celery: TaskRunFailed for its task runs
    that ended FAILED (not retrying, not allowed to fail); ExecutionFailed when it joined the execution, which
    ended FAILED (a task run that failed in an earlier link, which passed `stop` on)."""
    if _has_downstream(task):
        return
    if failures:
        states = engine.task_run_states([at.task_run_id for at, _ in failures])
        failed = [(at, error) for at, error in failures if states.get(at.task_run_id) == State.FAILED]
        if failed:
            raise TaskRunFailed(
                "; ".join(f"task run {at.task_id} of execution {at.execution_id} FAILED: {e}" for at, e in failed)
            )
    if joined_execution:
        failed_tasks = engine.failed_tasks(execution_id)
        if failed_tasks is not None:
            raise ExecutionFailed(f"execution {execution_id} FAILED; failed tasks: {', '.join(failed_tasks) or '-'}")


def _pool_check(task: Task, at: TaskRunCoordinates) -> Callable[[str], None] | None:
    """What refuses (a Celery FAILURE naming both) a message delivered on a queue that is not its task's pool;
    the claim calls it, in its own transaction, before writing anything. None when there is no queue to judge
    (run eagerly or by hand).

    The compiler always routes a task run to its pool; only a person re-applying a message (Flower lets one
    pick any queue) can send it elsewhere, where that pool's sandbox, tools or limits are not set up.
    """
    queue = (task.request.delivery_info or {}).get("routing_key")
    if not queue:
        return None

    def refuse(pool: str) -> None:
        if pool != queue:
            raise WrongPool(at.task_run_id, pool, queue)

    return refuse


def _sent_by_hand(task: Task) -> str | None:
    """Who sent this message by hand (re-applied it), for the audit; None for the planner's own messages.

    `chorus retry` names its actor in a header; a message with neither that nor the planner's mark was
    re-applied through Flower's API (or Celery's), and is audited under its Celery id. Only such a message
    may give a failed task run another attempt: a planner's duplicate arriving late must not.
    """
    actor = _header(task, ACTOR_HEADER)
    if actor:
        return str(actor)
    if _header(task, PLANNED_HEADER):
        return None
    return f"operator:reapply:{task.request.id}"


def _header(task: Task, name: str) -> object:
    """A custom message header: a worker sets it on the request; an eager `apply(headers=...)` keeps it apart."""
    value = task.request.get(name)
    return value if value is not None else (task.request.headers or {}).get(name)


def _claim(task: Task, at: TaskRunCoordinates, *, check_pool: bool = False) -> tuple[Engine, ClaimedTaskRun | None]:
    """Claim the task run a message names, for this Celery task's attempt (`check_pool`: refuse it when the
    message came from another pool's queue)."""
    engine = _holder.get()
    claimed = engine.claim(
        at,
        owner=_owner(task),
        celery_task_id=task.request.id,
        requested_by=_sent_by_hand(task),
        check_pool=_pool_check(task, at) if check_pool else None,
    )
    if claimed is None:  # only this worker sees a message passed over; a claim is logged by the engine's hooks
        _log_passed_over(task, at)
    return engine, claimed


def _log_passed_over(task: Task, at: TaskRunCoordinates) -> None:
    logger.info(
        "message %s for %s attempt %s passed over: claimed elsewhere, already ended, or its execution is not running",
        task.request.id,
        at.task_id,
        at.attempt,
        extra={
            "execution_id": at.execution_id,
            "task_run_id": at.task_run_id,
            "task_id": at.task_id,
            "action": "task_run.passed_over",
            "attempt": at.attempt,
        },
    )


_Body = TypeVar("_Body", bound=Callable[..., str])


def _celery_task(app: Celery, name: str) -> Callable[[_Body], _Body]:
    """`app.task(bind=True, name=name)` with the body's own signature kept for the type checker (Celery is
    untyped); Celery finds the task by its name, so the body is returned as it is. Not shared: a process
    that builds several apps (tests, tools) must not see one app's bodies registered on the next."""

    def register(body: _Body) -> _Body:
        app.task(bind=True, name=name, shared=False)(body)
        return body

    return register


def register_tasks(app: Celery, settings: Settings, hooks: Sequence[EngineHooks] = ()) -> None:
    """Define the Chorus tasks on `app` (the worker's composition root calls this once); each process's
    Engine carries `hooks`."""
    _holder.settings, _holder.app, _holder.hooks = settings, app, list(hooks)
    _holder.reset()  # an engine built for earlier settings (a process that registers twice) must not serve these

    @_celery_task(app, RUN_TASK_RUN)
    def run_task_run(
        self: Task,
        prev: Any = None,
        *,
        execution_id: str,
        task_id: str,
        parent_id: str | None = None,
        iteration: int | None = None,
        attempt: int = 1,
    ) -> Verdict:
        if prev == Verdict.STOP:
            return Verdict.STOP
        at = TaskRunCoordinates(execution_id, task_id, parent_id, iteration, attempt)
        engine, claimed = _claim(self, at, check_pool=True)
        if claimed is None:
            return Verdict.STOP
        try:
            claimed = prepare_tool_run(engine, claimed)
        except TaskFailed as error:
            return engine.finish(claimed, TaskOutcome(State.FAILED, error=error.message, retryable=False))
        served = served_tool_outcome(engine, claimed)
        if served is not None:  # a ledger replay's tool call: the original's result, the tool unrun
            return engine.finish(claimed, served)
        if claimed.task.type in ("Subflow", "ForEachItemExecutable"):
            return _start_subflow(engine, claimed)
        if claimed.task.type == "Sleep":
            return _run_sleep(engine, claimed)
        if claimed.task.type == "AIAgent":
            verdict = _run_agent(engine, claimed)
            if claimed.reapplied and verdict == Verdict.OK:
                engine.dispatch(execution_id, actor=f"worker:{_owner(self)}")
            return verdict
        with _Heartbeat(engine, claimed):
            try:
                with drain.interruptible():
                    outcome = run_claimed(claimed, engine)
            except drain.Fenced:
                _hand_back(engine, claimed, "claim unconfirmed")
            except drain.HandedBack:
                _hand_back(engine, claimed)
            verdict, rest = _until_recorded(
                lambda: _finish_and_go_on(self, engine, claimed, outcome), claimed.coordinates.task_run_id
            )
        if rest is not None:
            # What follows was re-planned in the finish's transaction (a join started a phase): it replaces the
            # links it took over, and the chain's untouched tail follows it.
            return self.replace(to_canvas(app, rest))  # type: ignore[no-any-return]
        if claimed.reapplied and verdict == Verdict.OK:
            engine.dispatch(execution_id, actor=f"worker:{_owner(self)}")  # the re-applied message has no chain
        if outcome.state is State.FAILED and verdict == Verdict.STOP:
            _report_failures(self, engine, [(claimed.coordinates, outcome.error)], execution_id=execution_id)
        return verdict

    @_celery_task(app, ENTER_TASK_RUN)
    def enter_task_run(
        self: Task,
        prev: Any = None,
        *,
        execution_id: str,
        task_id: str,
        parent_id: str | None = None,
        iteration: int | None = None,
        attempt: int = 1,
    ) -> Verdict:
        if prev == Verdict.STOP:
            return Verdict.STOP
        engine, claimed = _claim(self, TaskRunCoordinates(execution_id, task_id, parent_id, iteration, attempt))
        if claimed is None:
            return Verdict.STOP
        if claimed.task.type == "WorkingDirectory":
            with _Heartbeat(engine, claimed):
                verdict, body = run_working_directory(
                    engine, claimed, _owner(self), self.request.id, lambda child, _: run_claimed(child, engine)
                )
            return self.replace(to_canvas(app, body)) if body is not None else verdict
        decision = decide_claimed(claimed, engine)
        if isinstance(decision, TaskOutcome):
            return engine.finish(claimed, decision)
        verdict, plan = engine.decide_and_drive(claimed, decision.choice, decision.outputs)
        if plan is None:
            return verdict  # the body ended in the decision's transaction (or the decision was not recorded)
        # The body takes this task's place: its chain continuation (the siblings after it) follows the body.
        return self.replace(to_canvas(app, plan))  # type: ignore[no-any-return]

    @_celery_task(app, RUN_INLINE)
    def run_inline(
        self: Task,
        prev: Any = None,
        *,
        execution_id: str,
        runs: list[dict[str, Any]],
        join: bool = False,
        independent: bool = False,
    ) -> Verdict:
        engine = _holder.get()
        coordinates = [
            TaskRunCoordinates(
                execution_id, r["task_id"], r.get("parent_id"), r.get("iteration"), int(r.get("attempt", 1))
            )
            for r in runs
        ]
        if prev == Verdict.STOP and not join:
            return Verdict.STOP
        requested_by = _sent_by_hand(self)
        failures: list[tuple[TaskRunCoordinates, str | None]] = []

        def run(claimed: ClaimedTaskRun) -> TaskOutcome:
            outcome = run_claimed(claimed, engine)
            if outcome.state is State.FAILED:
                failures.append((claimed.coordinates, outcome.error))
            return outcome

        verdict, plan, reapplied = engine.run_inline(
            execution_id,
            coordinates,
            join=join,
            skip_runs=prev == Verdict.STOP,
            owner=_owner(self),
            celery_task_id=self.request.id,
            requested_by=requested_by,
            run=run,
            independent=independent,
        )
        if plan is not None:
            return self.replace(to_canvas(app, plan))  # type: ignore[no-any-return]
        if reapplied and verdict == Verdict.OK:
            engine.dispatch(execution_id, actor=f"worker:{_owner(self)}")  # the re-applied message has no chain
        top_level = all(at.parent_id is None for at in coordinates)
        _report_failures(self, engine, failures, execution_id=execution_id, joined_execution=join and top_level)
        return verdict

    @_celery_task(app, JOIN_TASK_RUN)
    def join_task_run(self: Task, prev: Any = None, *, execution_id: str, parent_id: str | None = None) -> Verdict:
        engine = _holder.get()
        verdict, plan = engine.join(execution_id, parent_id, actor="system:join")
        if plan is not None:
            return self.replace(to_canvas(app, plan))  # type: ignore[no-any-return]
        if verdict != Verdict.OK:
            _report_failures(self, engine, [], execution_id=execution_id, joined_execution=parent_id is None)
        return verdict if verdict in (Verdict.OK, Verdict.STOP) else Verdict.STOP
