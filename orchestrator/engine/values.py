"""The engine's values: where a task run sits, what a worker claims and reports, and the verdict it passes on."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from orchestrator.core.decision import TaskRunDecision
from orchestrator.core.flow import Flow, TaskSpec
from orchestrator.core.ids import task_run_id
from orchestrator.core.plan import TaskRunView
from orchestrator.core.states import State
from orchestrator.store.clock import DbClock
from orchestrator.store.tables import ExecutionRow, TaskRunRow

if TYPE_CHECKING:
    from orchestrator.engine.facade import Engine


class Verdict(StrEnum):
    """What a link hands to the next link of its chain; a stopped chain costs no database work (joins always look)."""

    OK = "ok"  #: go on with the chain
    STOP = "stop"  #: stop here: a failure, a pause, a duplicate, or another owner reports


@dataclass(frozen=True)
class TaskRunCoordinates:
    """Where a task run sits: exactly what a Celery message carries."""

    execution_id: str
    task_id: str
    parent_id: str | None
    iteration: int | None
    attempt: int

    @property
    def task_run_id(self) -> str:
        return task_run_id(self.execution_id, self.task_id, self.parent_id, self.iteration)


@dataclass(frozen=True)
class ClaimedTaskRun:
    """A task run this worker owns for one attempt, with what it needs to run it."""

    coordinates: TaskRunCoordinates
    owner: str
    flow: Flow
    task: TaskSpec
    variables: dict[str, Any]
    #: A re-apply of a failed attempt's message (Flower, `chorus retry`): it carries no chain, so the
    #: worker asks the engine to dispatch the rest of the flow once this attempt succeeds.
    reapplied: bool = False
    #: The database's clock as the claim read it, run on from there by this process's monotonic clock: what a
    #: task body's due times (a Pause's wake-up, the rest of a Sleep) are computed by, never this host's wall clock.
    clock: DbClock = field(default_factory=lambda: DbClock(datetime.now(UTC)))


@dataclass(frozen=True)
class LogRecord:
    level: str
    message: str
    at: datetime


@dataclass(frozen=True)
class OutboundRequest:
    """An HTTP request a task leaves to the notification outbox (the engine adds the Idempotency-Key header)."""

    kind: str  #: the task type asking (SlackIncomingWebhook, ...), for the audit and metrics
    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None
    connect_timeout_s: float
    read_timeout_s: float


@dataclass(frozen=True)
class TaskOutcome:
    """What running one attempt produced."""

    state: State  #: SUCCESS, WARNING, FAILED or SKIPPED
    outputs: dict[str, Any] | None = None
    logs: tuple[LogRecord, ...] = ()
    error: str | None = None
    retryable: bool = True
    #: Requests the task asks to send once its success is recorded (the notification outbox): written in the
    #: transaction that ends the task run, sent after it commits, so a success is never recorded unsent or sent twice.
    outbox: tuple[OutboundRequest, ...] = ()


def still_ours(row: TaskRunRow, claimed: ClaimedTaskRun) -> bool:
    """The task run is still RUNNING this claim's attempt for this owner (not taken over after a stall)."""
    return (
        State(row.state) is State.RUNNING
        and row.attempt == claimed.coordinates.attempt
        and row.claim_owner == claimed.owner
    )


def task_run_view(row: TaskRunRow) -> TaskRunView:
    return TaskRunView(
        id=row.id,
        task_id=row.task_id,
        parent_id=row.parent_id,
        iteration=row.iteration,
        state=State(row.state),
        attempt=row.attempt,
        decision=row.decision or {},
        retry_at=row.retry_at,
        updated_at=row.updated_at,
    )


#: Ends a log message cut at CHORUS_MAX_LOG_LINE_CHARS, so a reader knows the line is not whole.
TRUNCATED_MARKER = " …[truncated {dropped} characters]"


def log_row(execution: ExecutionRow, row: TaskRunRow | None, record: LogRecord, max_chars: int) -> dict[str, Any]:
    """One log line as stored, its message cut at `max_chars`."""
    message = record.message
    if len(message) > max_chars:
        message = message[:max_chars] + TRUNCATED_MARKER.format(dropped=len(message) - max_chars)
    return {
        "execution_id": execution.id,
        "task_run_id": row.id if row else None,
        "task_id": row.task_id if row else None,
        "attempt": row.attempt if row else None,
        "namespace": execution.namespace,
        "flow_id": execution.flow_id,
        "level": record.level,
        "message": message,
        "at": record.at,
    }


@dataclass(frozen=True)
class LocalDecision:
    """What a flowable's decider chose, for a decision taken in the operation's own transaction."""

    choice: TaskRunDecision
    outputs: dict[str, Any] | None = None


class LocalRunner(Protocol):
    """Task bodies an engine may run inside its own transaction (installed by a composition root).

    The engine cannot import the task bodies (they live in `workers`); a process that has them gives the
    engine this. Only pure task types reach it (see `engine/local_drive.py`), so running one has no effect
    outside the transaction, and a rollback undoes it entirely.
    """

    def run(self, engine: Engine, claimed: ClaimedTaskRun) -> TaskOutcome:
        """Run one attempt of an inline task (runIf, the handler, a failure made an outcome)."""
        ...

    def decide(self, engine: Engine, claimed: ClaimedTaskRun) -> TaskOutcome | LocalDecision:
        """A flowable's decision, or the outcome that ends it without one (runIf false, a failing decider)."""
        ...
