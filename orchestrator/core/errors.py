"""The Chorus error tree: every error a user can cause or meet, with structured fields.

    ChorusError
     ├── FlowInvalid              a flow document is rejected (carries one FlowErrorDetail per problem)
     ├── InputInvalid             execution inputs do not match the flow's declared inputs
     ├── LabelsInvalid            execution labels over their count or length limits
     ├── ExpressionError          an expression cannot be rendered
     │    └── ExpressionLimitExceeded   render time or output size over its bound
     ├── NotFound                 a flow, execution, task run or key does not exist
     ├── Conflict                 the object exists but is in the wrong state for the request
     │    ├── IllegalTransition   a state change the transition table forbids
     │    └── ExecutionBlocked    a flow's `checks` refuse to create the execution
     ├── TaskFailed               a task's own failure (`retryable` says whether a retry may help)
     │    └── NamespaceAccessDenied     a flow's namespace may not use another namespace for an action
     ├── ConfigurationError       a setting or CLI argument is unusable
     └── WebhookDeclined          a Webhook trigger's conditions refuse a call: nothing starts (Kestra's 204)

The API maps these classes to HTTP statuses in one table (422, 404, 409, ...); anything else is a bug.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class ChorusError(Exception):
    """Raised when Chorus refuses or cannot complete an operation."""

    def __init__(self, message: str | None = None) -> None:
        self.message = message or (self.__doc__ or type(self).__name__).strip().splitlines()[0]
        super().__init__(self.message)


@dataclass(frozen=True)
class FlowErrorDetail:
    """One problem in a flow document, located by field path and YAML position."""

    path: str  #: dotted field path, e.g. ``tasks[1].then[0].type``
    message: str
    line: int | None = None  #: 1-based YAML line, when known
    column: int | None = None  #: 1-based YAML column, when known
    suggestion: str | None = None  #: closest known value (e.g. task type), when one is close

    def __str__(self) -> str:
        where = f" (line {self.line}, column {self.column})" if self.line is not None else ""
        hint = f"; did you mean '{self.suggestion}'?" if self.suggestion else ""
        return f"{self.path or '<document>'}{where}: {self.message}{hint}"


class FlowInvalid(ChorusError):
    """Raised when a flow document is not a valid flow."""

    def __init__(self, errors: list[FlowErrorDetail], message: str | None = None) -> None:
        self.errors = errors
        super().__init__(message or "; ".join(str(e) for e in errors) or None)


#: "no received value to show" (None is a value: Kestra shows it as `null`).
NOT_SHOWN = object()


class InputInvalid(ChorusError):
    """Raised when execution inputs do not match the flow's declared inputs."""

    def __init__(self, input_id: str, message: str, *, received: object = NOT_SHOWN) -> None:
        self.input_id = input_id
        self.path = f"inputs.{input_id}"
        # Kestra's wording, which its users (and clients) match on.
        text = f"Invalid input for `{input_id}`, {message}"
        if received is not NOT_SHOWN:
            text += f", but received `{'null' if received is None else received}`"
        super().__init__(text)


class LabelsInvalid(ChorusError):
    """Raised when an execution's labels exceed their count or length limits."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        super().__init__(f"{path}: {message}")


class ExpressionError(ChorusError):
    """Raised when an expression cannot be rendered."""

    def __init__(self, message: str, expression: str | None = None) -> None:
        self.expression = expression
        super().__init__(message)


class ExpressionLimitExceeded(ExpressionError):
    """Raised when rendering an expression exceeds its time or output-size bound."""


class NotFound(ChorusError):
    """Raised when the requested object does not exist."""

    def __init__(self, kind: str, key: str, *, why: str | None = None) -> None:
        self.kind = kind
        self.key = key
        super().__init__(f"{kind} '{key}' not found" + (f": {why}" if why else ""))


class Conflict(ChorusError):
    """Raised when the object is in the wrong state for the request."""


class NoTaskToRestart(ChorusError):
    """Raised when a restart or replay finds no task run to start again from (Kestra answers 422).

    A restart of an ended execution without a failed task run, or a replay from a task run the execution
    does not have; the message is Kestra's (`ExecutionService.taskRunToRestart`).
    """

    def __init__(self, execution_id: str, task_run_id: str | None = None) -> None:
        self.path = "taskRunId" if task_run_id is not None else "execution"
        self.execution_id = execution_id
        where = f" (no task run '{task_run_id}' in execution {execution_id})" if task_run_id is not None else ""
        super().__init__(f"No task found to restart execution from!{where}")


class IllegalTransition(Conflict):
    """Raised when the transition table forbids a state change."""

    def __init__(self, subject: str, current: str, requested: str) -> None:
        self.subject = subject
        self.current = current
        self.requested = requested
        super().__init__(f"{subject}: illegal transition {current} -> {requested}")


class ExecutionBlocked(Conflict):
    """Raised when a flow's checks (behavior BLOCK_EXECUTION) refuse to create an execution."""

    def __init__(self, messages: list[str]) -> None:
        self.messages = messages
        super().__init__("the flow's checks block this execution: " + "; ".join(messages))


class TaskFailed(ChorusError):
    """Raised when a task fails while running."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        self.retryable = retryable
        super().__init__(message)


class NamespaceAccessDenied(TaskFailed):
    """Raised when a flow's namespace may not use another namespace for an action."""

    def __init__(self, namespace: str, target: str, use: str, what: str) -> None:
        self.namespace = namespace
        self.target = target
        self.use = use
        # Not retryable: only a configuration change (CHORUS_NAMESPACE_ACCESS) lets a retry succeed.
        super().__init__(
            f"{what}: namespace '{namespace}' may not use namespace '{target}' ({use}); an administrator "
            f"grants it in CHORUS_NAMESPACE_ACCESS",
            retryable=False,
        )


class ConfigurationError(ChorusError):
    """Raised when a setting or CLI argument is unusable."""

    def __init__(self, name: str, message: str) -> None:
        self.name = name
        super().__init__(f"{name}: {message}")


class WebhookDeclined(ChorusError):
    """Raised when a Webhook trigger's `conditions` (or Kestra 2's `when`) refuse a call: nothing starts.

    Not a failure: Kestra answers 204 with no body. `properties` are the trigger's (its response options).
    """

    def __init__(self, properties: dict[str, Any]) -> None:
        self.properties = properties
        super().__init__()
