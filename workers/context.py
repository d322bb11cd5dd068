"""What a task handler gets: its claimed task run, rendering against the run's variables, and a log sink."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from orchestrator.core.decision import TaskRunDecision
from orchestrator.core.errors import TaskFailed
from orchestrator.core.expressions import ExpressionFunctions, render, render_typed, render_value
from orchestrator.core.ids import idempotency_key
from orchestrator.engine import ClaimedTaskRun, Engine, LogRecord, OutboundRequest
from workers.functions import EngineFunctions
from workers.namespace_guard import NamespaceGuard

logger = logging.getLogger("chorus.task")

_LEVELS = {
    "TRACE": logging.DEBUG,
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "WARN": logging.WARNING,
    "WARNING": logging.WARNING,
    "ERROR": logging.ERROR,
}


_ORDER = {"TRACE": 0, "DEBUG": 1, "INFO": 2, "WARN": 3, "ERROR": 4}


@dataclass
class TaskContext:
    """One attempt of one task run, as its handler sees it."""

    claimed: ClaimedTaskRun
    functions: ExpressionFunctions | None = None
    logs: list[LogRecord] = field(default_factory=list)
    #: What the task leaves to the notification outbox: sent after its success is recorded, not by the task.
    outbox: list[OutboundRequest] = field(default_factory=list)

    @property
    def properties(self) -> dict[str, Any]:
        return self.claimed.task.properties

    @property
    def idempotency_key(self) -> str:
        """This logical task's key (`taskrun.idempotencyKey`), sent with its side effects: same on every attempt."""
        return idempotency_key(self.claimed.coordinates.task_run_id)

    def notify(self, request: OutboundRequest) -> None:
        """Leave a request to the outbox: recorded with this attempt's success and sent after that commits,
        with this task run's Idempotency-Key (a worker dying in between never makes it send twice)."""
        if self.outbox:
            # One row per idempotency key: a second request of the same task run would never be sent.
            raise TaskFailed("a task run sends at most one notification", retryable=False)
        self.outbox.append(request)

    def render(self, value: Any) -> Any:
        """Render a property value (strings, and strings nested in lists and maps)."""
        return render_value(value, self.claimed.variables, functions=self.functions)

    def render_str(self, template: str) -> str:
        return render(template, self.claimed.variables, functions=self.functions)

    def render_stored(
        self, value: Any, sink: str, variables: Mapping[str, Any] | None = None, *, typed: bool = False
    ) -> Any:
        """Render a value the task stores where it is shown (labels, KV, subflow inputs); one that secret()
        took part in is refused, since no masking can follow every filter applied to a secret. With `typed`, a
        string that is one `{{ expr }}` keeps the expression's type (Kestra's `renderTyped`)."""
        functions = self.functions if isinstance(self.functions, EngineFunctions) else None
        before = functions.secrets.reads if functions else 0
        scope = self.claimed.variables if variables is None else variables
        if typed and isinstance(value, str):
            rendered = render_typed(value, scope, functions=self.functions)
        else:
            rendered = render_value(value, scope, functions=self.functions)
        if functions and functions.secrets.reads > before:
            raise TaskFailed(
                f"{sink}: a value computed from secret() cannot be stored there, where it would be shown in clear; "
                "call secret() in the task that uses the value instead",
                retryable=False,
            )
        return rendered

    @property
    def guard(self) -> NamespaceGuard:
        """The namespace checks for this task run (what another namespace, execution or file it may use)."""
        if not isinstance(self.functions, EngineFunctions):
            raise TaskFailed("this task needs the engine, and its context was built without one", retryable=False)
        return self.functions.guard

    def redact(self, text: str) -> str:
        """`text` with the values of the secrets this attempt has read masked (DESIGN invariant 8)."""
        return self.functions.secrets.redact(text) if isinstance(self.functions, EngineFunctions) else text

    @property
    def engine(self) -> Engine:
        """The worker's Engine, for operations beyond claim and finish (the LLM ledger)."""
        if not isinstance(self.functions, EngineFunctions):
            raise TaskFailed("this task needs the engine, and its context was built without one", retryable=False)
        return self.functions.engine

    def log(self, level: str, message: str) -> None:
        message = self.redact(message)
        level = level.upper()
        if level == "WARNING":
            level = "WARN"
        floor = self.claimed.task.log_level
        if floor and _ORDER.get(level, 2) < _ORDER.get(floor.upper().replace("WARNING", "WARN"), 0):
            return  # the task's `logLevel` drops finer records, as in Kestra
        self.logs.append(LogRecord(level, message, datetime.now(UTC)))
        at = self.claimed.coordinates
        logger.log(
            _LEVELS.get(level, logging.INFO),
            "%s",
            message,
            extra={
                "execution_id": at.execution_id,
                "task_run_id": at.task_run_id,
                "task_id": at.task_id,
                "namespace": self.claimed.flow.namespace,
                "flow": self.claimed.flow.id,
            },
        )


#: A runnable task: returns its outputs (or None); raises TaskFailed (or any error) to fail the attempt.
Handler = Callable[[TaskContext], dict[str, Any] | None]


@dataclass(frozen=True)
class Decision:
    """What a flowable decided (which branch, which values), recorded before its body runs."""

    choice: TaskRunDecision
    outputs: dict[str, Any] | None = None


#: A flowable task: decides how its body runs.
Decider = Callable[[TaskContext], Decision]
