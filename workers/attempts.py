"""One attempt of a runnable task, and a flowable's decision: what a worker (or a local drive) runs for a claim."""

from __future__ import annotations

from typing import Any

from orchestrator.core.errors import ChorusError, TaskFailed
from orchestrator.core.expressions import is_true
from orchestrator.core.states import State
from orchestrator.engine import ClaimedTaskRun, Engine, LocalDecision, TaskOutcome
from workers.context import TaskContext
from workers.deadline import deadline
from workers.functions import EngineFunctions
from workers.registry import decider_for, handler_for


def failure(ctx: TaskContext, error: BaseException) -> TaskOutcome:
    message = error.message if isinstance(error, ChorusError) else f"{type(error).__name__}: {error}"
    ctx.log("ERROR", message)
    # A render wraps what a function raised (a namespace denial in kv()): the cause says whether to retry.
    cause = error if isinstance(error, TaskFailed) else error.__cause__
    retryable = cause.retryable if isinstance(cause, TaskFailed) else True
    return TaskOutcome(State.FAILED, logs=tuple(ctx.logs), error=ctx.redact(message), retryable=retryable)


def redacted(ctx: TaskContext, value: Any) -> Any:
    """Outputs with the secrets this attempt read masked: outputs are shown by the API and kept in the
    database (DESIGN invariant 8). A later task that needs a secret reads it with secret() itself."""
    if isinstance(value, str):
        return ctx.redact(value)
    if isinstance(value, dict):
        return {k: redacted(ctx, v) for k, v in value.items()}
    if isinstance(value, list):
        return [redacted(ctx, v) for v in value]
    return value


def run_claimed(claimed: ClaimedTaskRun, engine: Engine) -> TaskOutcome:
    """Run one attempt of a runnable task: runIf, the handler, failures turned into a FAILED outcome."""
    ctx = TaskContext(claimed, EngineFunctions(engine, claimed))
    try:
        if claimed.task.run_if is not None and not is_true(ctx.render(claimed.task.run_if)):
            return TaskOutcome(State.SKIPPED)
        with deadline(claimed.task.timeout):
            outputs = handler_for(claimed.task.type)(ctx)
    except Exception as error:  # any failure of the task is the task's, not the worker's
        return failure(ctx, error)
    return TaskOutcome(State.SUCCESS, outputs=redacted(ctx, outputs), logs=tuple(ctx.logs), outbox=tuple(ctx.outbox))


def decide_claimed(claimed: ClaimedTaskRun, engine: Engine) -> TaskOutcome | LocalDecision:
    """A flowable's decision (runIf, its decider), or the outcome that ends it without one."""
    ctx = TaskContext(claimed, EngineFunctions(engine, claimed))
    try:
        if claimed.task.run_if is not None and not is_true(ctx.render(claimed.task.run_if)):
            return TaskOutcome(State.SKIPPED)
        decision = decider_for(claimed.task.type)(ctx)
    except Exception as error:
        return failure(ctx, error)
    return LocalDecision(decision.choice, decision.outputs)


class LocalRunner:
    """The engine's LocalRunner: the same bodies a worker runs, for pure tasks run in a controller's transaction."""

    def run(self, engine: Engine, claimed: ClaimedTaskRun) -> TaskOutcome:
        return run_claimed(claimed, engine)

    def decide(self, engine: Engine, claimed: ClaimedTaskRun) -> TaskOutcome | LocalDecision:
        return decide_claimed(claimed, engine)
