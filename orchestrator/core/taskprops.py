"""Typed property models of every task type, by Kestra's YAML property names.

The models only validate: the parser keeps the raw, unrendered values. Their value types
(literal or expression, coerced as Jackson does) are in :mod:`orchestrator.core.prop_types`.
"""

from __future__ import annotations

import json
from typing import Annotated

from pydantic import Field, JsonValue, model_validator

from orchestrator.core import child_policy
from orchestrator.core.prop_types import (
    Bool,
    Duration,
    HttpMethod,
    Int,
    Json,
    ListOrText,
    ListValue,
    LogLevel,
    MapOrList,
    MapValue,
    NonNegativeInt,
    Number,
    PositiveInt,
    Properties,
    Text,
    TextList,
    TextOrList,
    accepting,
    one_of,
)

# -- control: runnable ---------------------------------------------------------------------------


class LogProps(Properties):
    message: TextOrList
    level: LogLevel | None = None


class ReturnProps(Properties):
    format: Text | None = None


class EchoProps(Properties):
    format: Text
    level: LogLevel | None = None


class FailProps(Properties):
    condition: Text | None = None
    error_message: Text | None = None


class AssertProps(Properties):
    conditions: TextList
    error_message: Text | None = None


class OutputValuesProps(Properties):
    values: MapValue | None = None


class SleepProps(Properties):
    duration: Duration


def _json_labels(value: object) -> bool:
    """Kestra's Labels also takes a JSON text of a map (`labels: '{"k": "v"}'`)."""
    if not isinstance(value, str):
        return False
    try:
        return isinstance(json.loads(value), dict | list)
    except ValueError:
        return False


class LabelsProps(Properties):
    labels: Annotated[
        JsonValue,
        accepting(
            "a mapping, a list of {key, value} or the JSON text of one",
            lambda v: isinstance(v, dict | list) or _json_labels(v),
        ),
    ]


class KvSetProps(Properties):
    key: Text
    value: Json
    namespace: Text | None = None
    overwrite: Bool | None = None
    ttl: Duration | None = None
    kv_type: (
        Annotated[
            JsonValue,
            accepting("a KV type", one_of("STRING", "NUMBER", "BOOLEAN", "DATETIME", "DATE", "DURATION", "JSON")),
        ]
        | None
    ) = None


class KvGetProps(Properties):
    key: Text
    namespace: Text | None = None
    error_on_missing: Bool | None = None


class KvDeleteProps(KvGetProps):
    pass


class KvPutProps(Properties):
    """Kestra 2's kv.Put: update a key's value (merged into a JSON value), keeping its description and expiry."""

    key: Text
    value: Json
    namespace: Text | None = None
    error_on_missing: Bool | None = None


class FetchProps(Properties):
    namespace: Text | None = None
    flow_id: Text | None = None
    execution_id: Text | None = None
    tasks_id: TextList | None = None
    level: LogLevel | None = None


class ResumeProps(Properties):
    namespace: Text | None = None
    flow_id: Text | None = None
    execution_id: Text | None = None
    inputs: MapValue | None = None


class LocalFilesProps(Properties):
    inputs: (
        Annotated[JsonValue, accepting("a mapping of file names to contents", lambda v: isinstance(v, dict))] | None
    ) = None
    outputs: TextList | None = None


class ToggleProps(Properties):
    trigger: Text
    namespace: Text | None = None
    flow_id: Text | None = None
    enabled: Bool | None = None


# -- control: flowable (child task lists are validated by the parser, not here) -------------------


#: Kestra 2's `onChildFailure` of Parallel and Dag; CANCELLED and FAILED are the names Dag took before.
_ON_CHILD_FAILURE = ("CONTINUE", "CANCEL", "FAIL", "CANCELLED", "FAILED")


def _child_failure_policy(value: object) -> bool:
    return isinstance(value, str) and value.strip().upper() in _ON_CHILD_FAILURE


OnChildFailure = Annotated[JsonValue, accepting("CONTINUE, CANCEL or FAIL", _child_failure_policy)]
#: kestra-io/kestra#15366's `childFailurePolicy` of Parallel, Dag and ForEach (`core/child_policy.py`).
ChildFailurePolicyValue = Annotated[
    JsonValue, accepting("FAIL_FAST, STOP or CONTINUE", lambda v: child_policy.parse(v) is not None)
]


class ParallelProps(Properties):
    concurrent: NonNegativeInt | None = None  #: 0: no limit
    on_child_failure: OnChildFailure | None = None  #: Kestra 2: interrupt the running siblings of a failed child
    fail_fast: Bool | None = None  #: Kestra 2.0's earlier form: kill them
    child_failure_policy: ChildFailurePolicyValue | None = None


class ForEachProps(Properties):
    values: ListOrText
    concurrency_limit: Int | None = None
    child_failure_policy: ChildFailurePolicyValue | None = None  #: ignored with `concurrencyLimit: 1` (a warning)


class EachSequentialProps(Properties):
    value: ListOrText


class EachParallelProps(Properties):
    value: ListOrText
    concurrent: NonNegativeInt | None = None


class IfProps(Properties):
    condition: Text


class SwitchProps(Properties):
    value: Text


class DagProps(Properties):
    concurrent: NonNegativeInt | None = None
    on_child_failure: OnChildFailure | None = None
    child_failure_policy: ChildFailurePolicyValue | None = None


class PauseProps(Properties):
    delay: Duration | None = None
    pause_duration: Duration | None = None
    behavior: (
        Annotated[JsonValue, accepting("RESUME, WARN, CANCEL or FAIL", one_of("RESUME", "WARN", "CANCEL", "FAIL"))]
        | None
    ) = None
    on_resume: ListValue | None = None  # each entry is checked as an input declaration by the parser
    # Kestra 2's `onPause` (one task, run as the Pause's first child before it parks) is a branch the
    # parser reads, not a property.


class CheckFrequency(Properties):
    max_iterations: PositiveInt | None = None
    max_duration: Duration | None = None
    interval: Duration | None = None


class LoopUntilProps(Properties):
    condition: Text
    fail_on_max_reached: Bool | None = None
    check_frequency: CheckFrequency | None = None


class CacheProps(Properties):
    patterns: TextList
    ttl: Duration | None = None


class WorkingDirectoryProps(Properties):
    cache: CacheProps | None = None
    namespace_files: MapValue | None = None
    input_files: (
        Annotated[JsonValue, accepting("a mapping or a JSON text", lambda v: isinstance(v, dict | str))] | None
    ) = None
    output_files: TextList | None = None


class _ChildFlowProps(Properties):
    namespace: Text
    flow_id: Text
    revision: Int | None = None
    inputs: MapValue | None = None
    labels: MapOrList | None = None
    wait: Bool | None = None
    transmit_failed: Bool | None = None
    inherit_labels: Bool | None = None
    schedule_date: Text | None = None
    restart_behavior: (
        Annotated[JsonValue, accepting("RETRY_FAILED or NEW_EXECUTION", one_of("RETRY_FAILED", "NEW_EXECUTION"))] | None
    ) = None


class SubflowProps(_ChildFlowProps):
    outputs: MapValue | None = None  # deprecated in Kestra 0.15 but still in its test flows


class Batch(Properties):
    rows: Int | None = None
    bytes: Text | None = None
    partitions: Int | None = None
    separator: Text | None = None


class ForEachItemProps(_ChildFlowProps):
    items: Text
    batch: Batch | None = None


class ForEachItemSplitProps(Properties):
    """The `<id>_split` child of a ForEachItem: its items and batch."""

    items: Text
    batch: Batch | None = None


class ForEachItemBatchesProps(_ChildFlowProps):
    """The `<id>_items` child of a ForEachItem: the subflow to start per batch."""


# -- io ------------------------------------------------------------------------------------------


class HttpRequestProps(Properties):
    uri: Text
    method: HttpMethod | None = None
    body: Json = None
    form_data: MapValue | None = None
    content_type: Text | None = None
    headers: MapValue | None = None
    options: MapValue | None = None
    ssl_options: MapValue | None = None
    allow_failed: Bool | None = None
    encrypt_body: Bool | None = None


class HttpDownloadProps(HttpRequestProps):
    fail_on_empty_response: Bool | None = None
    save_as: Text | None = None


class SlackWebhookProps(Properties):
    url: Text
    payload: Json = None
    message_text: Text | None = None
    options: MapValue | None = None


class IncomingWebhookProps(Properties):
    """Kestra's Teams, Discord and Google Chat incoming webhooks: a URL and the JSON payload to post."""

    url: Text
    payload: Json
    options: MapValue | None = None


class JiraCreateProps(Properties):
    url: Text | None = None  # the article's spelling of Kestra's baseUrl
    base_url: Text | None = None
    access_token: Text | None = None
    issue_type_id: Text | None = None
    project_key: Text
    summary: Text
    issue_type: Text | None = None
    description: Text | None = None  # the issue's body; it also sets the task's documentation field
    username: Text | None = None
    password: Text | None = None
    api_token: Text | None = None
    labels: TextList | None = None
    priority: Text | None = None
    assignee: Text | None = None
    fields: MapValue | None = None
    options: MapValue | None = None

    @model_validator(mode="after")
    def _url_or_base_url(self) -> JiraCreateProps:
        if self.url is None and self.base_url is None:
            raise ValueError("needs baseUrl (or url)")
        return self


class MailSendProps(Properties):
    to: TextOrList
    from_: Text | None = Field(default=None, alias="from")
    cc: TextOrList | None = None
    subject: Text | None = None
    html_text_content: Text | None = None
    plain_text_content: Text | None = None
    host: Text | None = None
    port: Int | None = None
    username: Text | None = None
    password: Text | None = None
    transport_strategy: Text | None = None
    attachments: ListValue | None = None
    embedded_images: ListValue | None = None
    session_timeout: Int | None = None


# -- scripts -------------------------------------------------------------------------------------


class _ScriptProps(Properties):
    env: MapValue | None = None
    input_files: (
        Annotated[JsonValue, accepting("a mapping or a JSON text", lambda v: isinstance(v, dict | str))] | None
    ) = None
    output_files: TextList | None = None
    namespace_files: MapValue | None = None
    before_commands: TextOrList | None = None
    interpreter: TextList | None = None
    warning_on_std_err: Bool | None = None
    fail_fast: Bool | None = None
    target_os: Text | None = Field(default=None, alias="targetOS")
    output_directory: Bool | None = None
    # Container settings are accepted so Kestra flows load unchanged; Chorus runs a local subprocess.
    container_image: Text | None = None
    task_runner: MapValue | None = None
    docker: MapValue | None = None
    runner: Text | None = None
    dependencies: TextList | None = None
    dependency_cache_enabled: Bool | None = None


class ScriptProps(_ScriptProps):
    script: Text


class CommandsProps(_ScriptProps):
    commands: TextOrList


# -- ai ------------------------------------------------------------------------------------------


class _LlmProps(Properties):
    # OpenAI-compatible style (io.kestra.plugin.openai.*, the article's io.kestra.plugin.ai.openai.*)
    model: Text | None = None
    api_key: Text | None = None
    base_url: Text | None = None
    temperature: Number | None = None
    top_p: Number | None = None
    max_tokens: Int | None = None
    n: Int | None = None
    stop: TextList | None = None
    presence_penalty: Number | None = None
    frequency_penalty: Number | None = None
    logit_bias: MapValue | None = None
    user: Text | None = None
    seed: Int | None = None
    client_timeout: Int | None = None
    response_format: Json = None
    json_response_schema: Json = None
    # io.kestra.plugin.ai.* (langchain4j) style
    provider: MapValue | None = None
    configuration: MapValue | None = None
    tools: ListValue | None = None
    guardrails: MapValue | None = None
    observability: MapValue | None = None
    system_message: Text | None = None
    # Chorus's own: cap tokens and cost of this task run (or, with scope EXECUTION, of the whole execution).
    budget: MapValue | None = None


class ChatCompletionProps(_LlmProps):
    prompt: Text | None = None
    messages: ListValue | None = None
    functions: ListValue | None = None
    function_call: Text | None = None

    @model_validator(mode="after")
    def _prompt_or_messages(self) -> ChatCompletionProps:
        if self.prompt is None and self.messages is None:
            raise ValueError("needs a prompt or messages")
        return self


#: Kestra's memory providers (plugin-ai and its langchain4j aliases). Chorus keeps every one in its own PostgreSQL
#: (`agent_memory`), per namespace and memory id: the Redis/PostgreSQL connection properties are accepted, unused.
AGENT_MEMORY_TYPES = (
    "io.kestra.plugin.ai.memory.KestraKVStore", "io.kestra.plugin.ai.memory.KestraKVMemory",
    "io.kestra.plugin.langchain4j.memory.KestraKVMemory", "io.kestra.plugin.ai.memory.PostgreSQL",
    "io.kestra.plugin.ai.memory.Redis", "KestraKVStore", "PostgreSQL", "Redis",
)  # fmt: skip
_MEMORY_TYPES_TEXT = "a memory type: " + ", ".join(AGENT_MEMORY_TYPES[:5])
_MEMORY_DROPS = ("NEVER", "BEFORE_TASKRUN", "AFTER_TASKRUN")


class AgentMemoryProps(Properties):
    """An AIAgent's `memory`: Kestra's MemoryProvider (messages 10, ttl PT1H, memoryId the correlation id)."""

    type: Annotated[JsonValue, accepting(_MEMORY_TYPES_TEXT, one_of(*AGENT_MEMORY_TYPES))] = None
    memory_id: Text | None = None
    messages: Int | None = None
    ttl: Duration | None = None
    drop: Annotated[JsonValue, accepting("NEVER, BEFORE_TASKRUN or AFTER_TASKRUN", one_of(*_MEMORY_DROPS))] = None
    # Chorus's own: the most (estimated) tokens the remembered messages hold; the oldest go first past it.
    max_tokens: Int | None = None
    # io.kestra.plugin.ai.memory.PostgreSQL / Redis connection: accepted so their flows deploy, not used.
    host: Text | None = None
    port: Int | None = None
    database: Text | None = None
    user: Text | None = None
    password: Text | None = None
    table_name: Text | None = None


class AIAgentProps(_LlmProps):
    prompt: Text
    max_sequential_tools_invocations: Int | None = None
    # Chorus's own: the most model calls one run makes (the parser checks `tools` entries itself).
    max_iterations: Int | None = None
    content_retrievers: ListValue | None = None
    memory: AgentMemoryProps | None = None
    output_files: TextList | None = None


class McpToolCallProps(Properties):
    """One call to an MCP server's tool, made for an AIAgent (the parser builds it from a tool entry)."""

    transport: Annotated[JsonValue, accepting("stdio or http", one_of("stdio", "http"))]
    command: TextList | None = None
    env: MapValue | None = None
    url: Text | None = None
    headers: MapValue | None = None
    timeout: Duration | None = None
    log_events: Bool | None = None
