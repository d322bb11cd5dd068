"""The flow model: a parsed, validated Kestra flow document as frozen pydantic values.

Instances are built by :func:`orchestrator.core.parse.parse_flow`; nothing here reads YAML. Task
properties stay unrendered: expressions are rendered by the workers at run time.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import AliasChoices, BaseModel, BeforeValidator, ConfigDict, Field, JsonValue, model_validator
from pydantic.alias_generators import to_camel

from orchestrator.core.durations import parse_duration
from orchestrator.core.kestra2 import CheckSpec

__all__ = [
    "Concurrency",
    "Flow",
    "FlowOutput",
    "Input",
    "InputType",
    "Label",
    "PluginDefault",
    "RetrySpec",
    "TaskSpec",
    "TriggerSpec",
]


class InputType(enum.StrEnum):
    """The input (and flow output) types Kestra declares."""

    STRING = "STRING"  #: any text
    INT = "INT"  #: a whole number
    FLOAT = "FLOAT"  #: a decimal number
    BOOLEAN = "BOOLEAN"  #: true or false
    BOOL = "BOOL"  #: true or false, Kestra's newer name for BOOLEAN (used by its 2.x flows)
    DATETIME = "DATETIME"  #: an instant, normalised to ISO-8601 UTC (``...Z``)
    DATE = "DATE"  #: a calendar date, ISO-8601
    TIME = "TIME"  #: a local time, ISO-8601
    DURATION = "DURATION"  #: an ISO-8601 duration, normalised like java.time.Duration
    JSON = "JSON"  #: a JSON document
    YAML = "YAML"  #: a YAML document
    ARRAY = "ARRAY"  #: a list whose items have ``itemType``
    ENUM = "ENUM"  #: one of ``values`` (legacy form of SELECT)
    SELECT = "SELECT"  #: one of ``values``
    MULTISELECT = "MULTISELECT"  #: several of ``values``
    SECRET = "SECRET"  #: text that is redacted wherever it is shown
    FILE = "FILE"  #: a file, passed around as a storage URI
    URI = "URI"  #: a URI
    EMAIL = "EMAIL"  #: an e-mail address


def _duration(value: object) -> object:
    # pydantic's own timedelta parsing accepts "5 minutes"-like and numeric forms Kestra refuses.
    if isinstance(value, str):
        return parse_duration(value)
    if isinstance(value, timedelta):
        return value
    raise ValueError("expected an ISO-8601 duration such as PT5M")


Duration = Annotated[timedelta, BeforeValidator(_duration)]


class _Yaml(BaseModel):
    """Base of the models read from YAML mappings: camelCase names, unknown keys refused."""

    model_config = ConfigDict(frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True)


class RetrySpec(_Yaml):
    """A retry policy (Kestra ``retry``) of a task or of the whole flow."""

    type: Literal["constant", "exponential", "random"]
    interval: Duration | None = None
    max_interval: Duration | None = None
    min_interval: Duration | None = None
    delay_factor: float | None = None
    # Kestra 0.24 renamed `maxAttempt` to `maxAttempts` and kept the old name as an alias: both are read.
    max_attempts: int | None = Field(
        default=None, alias="maxAttempts", validation_alias=AliasChoices("maxAttempts", "maxAttempt"), ge=1
    )
    max_duration: Duration | None = None
    warning_on_retry: bool = False
    behavior: Literal["RETRY_FAILED_TASK", "CREATE_NEW_EXECUTION"] = "RETRY_FAILED_TASK"

    @model_validator(mode="after")
    def _intervals_for_type(self) -> RetrySpec:
        needed = {
            "constant": ("interval",),
            "exponential": ("interval", "maxInterval"),
            "random": ("minInterval", "maxInterval"),
        }[self.type]
        missing = [name for name in needed if getattr(self, _snake(name)) is None]
        if missing:
            raise ValueError(f"a {self.type} retry needs {' and '.join(missing)}")
        return self


def _snake(camel: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in camel)


class Concurrency(_Yaml):
    """Flow-level concurrency limit and what to do with executions over it."""

    limit: int = Field(ge=1)
    behavior: Literal["QUEUE", "CANCEL", "FAIL"] = "QUEUE"
    # Kestra 2 test flows (valids/flow-concurrency-queue-limit.yml, -queue-size.yml) bound the queue with these;
    # the 2.x source that enforces the bound is not in the reference index, so they are read (a positive
    # integer, as `limit`) but not enforced: a queued execution waits as it would without them.
    queue_limit: int | None = Field(default=None, ge=1)
    queue_size: int | None = Field(default=None, ge=1)
    # valids/flow-concurrency-queue-duration.yml: an ISO-8601 `duration`, read the same way (not enforced here;
    # the k2-flowb slice owns its behaviour).
    duration: Duration | None = None


class Label(BaseModel):
    """One execution label."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str
    value: str


class PluginDefault(_Yaml):
    """Default property values for every task (or trigger) whose type matches ``type``."""

    type: str
    values: dict[str, JsonValue] = Field(default_factory=dict)
    forced: bool = False


class Input(BaseModel):
    """One declared flow input (also used for ``Pause.onResume``).

    The parser builds these with full checks (``inputs.read_declaration``); ``Input.model_validate``
    also reads a raw Kestra declaration (camelCase keys, legacy ``name``, ``dependsOn`` mapping),
    for code holding the raw YAML, such as a Pause task's ``onResume`` property.
    """

    model_config = ConfigDict(frozen=True, alias_generator=to_camel, populate_by_name=True)

    id: str
    type: InputType
    required: bool = True  #: Kestra's default
    defaults: JsonValue = None
    description: str | None = None
    display_name: str | None = None
    validator: str | None = None  #: regex a STRING/SECRET value must match entirely
    min: JsonValue = None  #: INT/FLOAT number or DURATION string
    max: JsonValue = None
    after: str | None = None  #: DATE/DATETIME/TIME lower bound (inclusive), ISO text
    before: str | None = None  #: DATE/DATETIME/TIME upper bound (inclusive), ISO text
    values: tuple[str, ...] | None = None  #: ENUM/SELECT/MULTISELECT choices
    item_type: InputType | None = None  #: ARRAY/MULTISELECT item type
    allow_custom_value: bool = False
    expression: str | None = None  #: SELECT/MULTISELECT values computed at run time
    depends_on: tuple[str, ...] = ()
    depends_on_condition: str | None = None
    extension: str | None = None  #: FILE: expected file extension(s)
    line: int = 0
    column: int = 0

    @model_validator(mode="before")
    @classmethod
    def _from_kestra_shape(cls, data: object) -> object:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if "id" not in data and "name" in data:
            data["id"] = data.pop("name")
        depends_on = data.get("dependsOn")
        if isinstance(depends_on, dict):
            data["dependsOn"] = tuple(depends_on.get("inputs") or ())
            data.setdefault("dependsOnCondition", depends_on.get("condition"))
        return data


class FlowOutput(BaseModel):
    """A flow output: an expression rendered when the execution ends."""

    model_config = ConfigDict(frozen=True)

    id: str
    type: InputType = InputType.STRING
    value: JsonValue = None  #: raw, unrendered
    description: str | None = None
    display_name: str | None = None
    required: bool = True


class TriggerSpec(BaseModel):
    """A trigger declaration; its properties stay raw for the scheduler and webhook code."""

    model_config = ConfigDict(frozen=True)

    id: str
    type: str  #: canonical short name: "Schedule", "Webhook", "Flow", "HttpTrigger", ...
    type_name: str  #: as written in YAML
    properties: dict[str, JsonValue] = Field(default_factory=dict)
    disabled: bool = False
    line: int = 0
    column: int = 0


class TaskSpec(BaseModel):
    """One task at any depth, with its child task lists by role."""

    model_config = ConfigDict(frozen=True)

    id: str
    type: str  #: canonical short name from the catalogue
    type_name: str  #: as written in YAML
    description: str | None = None
    retry: RetrySpec | None = None
    timeout: timedelta | None = None
    disabled: bool = False
    run_if: str | None = None
    allow_failure: bool = False
    allow_warning: bool = False
    log_level: str | None = None
    log_to_file: bool = False
    worker_group: str | None = None
    task_cache: dict[str, JsonValue] | None = None
    properties: dict[str, JsonValue] = Field(default_factory=dict)
    branches: dict[str, tuple[TaskSpec, ...]] = Field(default_factory=dict)
    #: An AIAgent's tools (its tasks, a Subflow per flow, an McpToolCall per MCP server): each call a child task run.
    tools: tuple[TaskSpec, ...] = ()
    #: Chorus extension: tasks that undo this one when the execution fails after it succeeded (a Saga's step).
    compensate: tuple[TaskSpec, ...] = ()
    depends_on: tuple[str, ...] = ()
    line: int = 0
    column: int = 0

    def iter_tasks(self) -> Iterator[TaskSpec]:
        """Yield this task and then every descendant, depth-first in YAML order."""
        yield self
        for children in (*self.branches.values(), self.tools, self.compensate):
            for child in children:
                yield from child.iter_tasks()


class Flow(BaseModel):
    """A whole flow document."""

    model_config = ConfigDict(frozen=True)

    id: str
    namespace: str
    revision: int | None = None
    description: str | None = None
    labels: tuple[Label, ...] = ()
    inputs: tuple[Input, ...] = ()
    variables: dict[str, JsonValue] = Field(default_factory=dict)
    tasks: tuple[TaskSpec, ...]
    errors: tuple[TaskSpec, ...] = ()
    finally_: tuple[TaskSpec, ...] = ()  #: YAML ``finally``
    after_execution: tuple[TaskSpec, ...] = ()  #: YAML ``afterExecution``
    triggers: tuple[TriggerSpec, ...] = ()
    outputs: tuple[FlowOutput, ...] = ()
    plugin_defaults: tuple[PluginDefault, ...] = ()
    concurrency: Concurrency | None = None
    retry: RetrySpec | None = None
    disabled: bool = False
    sla: JsonValue = None  #: raw; SLA evaluation comes later
    checks: tuple[CheckSpec, ...] = ()  #: rendered before an execution is created (Kestra 2 `checks`)

    @property
    def key(self) -> str:
        """The flow's identity across revisions: ``namespace.id``."""
        return f"{self.namespace}.{self.id}"

    def iter_tasks(self) -> Iterator[TaskSpec]:
        """Yield every task at every depth: tasks, errors, finally, afterExecution, depth-first."""
        for section in (self.tasks, self.errors, self.finally_, self.after_execution):
            for task in section:
                yield from task.iter_tasks()

    def task(self, task_id: str) -> TaskSpec:
        """Return the task with this id, at any depth; raise KeyError when there is none."""
        for task in self.iter_tasks():
            if task.id == task_id:
                return task
        raise KeyError(task_id)


TaskSpec.model_rebuild()
