"""The catalogue of task and trigger types: short name, Kestra names, worker pool, property model."""

from __future__ import annotations

import difflib
import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from pydantic import BaseModel, JsonValue

from orchestrator.core import catalogue_props as cp
from orchestrator.core import event_props, kestra2, prop_types, tool_schema, trigger_props
from orchestrator.core import taskprops as p
from orchestrator.core.approval import ApprovalProps
from orchestrator.core.flow import PluginDefault

__all__ = [
    "CATALOGUE",
    "TRIGGERS",
    "Pool",
    "TaskType",
    "TriggerType",
    "apply_plugin_defaults",
    "default_applies",
    "resolve",
    "resolve_trigger",
    "suggest",
    "suggest_trigger",
    "unsupported",
]


class Pool(enum.StrEnum):
    """The worker pool (Celery queue) a task type runs on."""

    CONTROL = "control"  #: flow control and cheap built-ins, decided without external I/O
    IO = "io"  #: HTTP calls, notifications, e-mail
    SCRIPTS = "scripts"  #: subprocesses and working directories
    AI = "ai"  #: LLM calls and agents


_SEQUENTIAL = ("tasks", "errors", "finally")
FOR_EACH_ITEM = "io.kestra.plugin.core.flow.ForEachItem"


@dataclass(frozen=True)
class TaskType:
    """One task type Chorus implements."""

    name: str  #: canonical short name, e.g. "Log"
    kestra_names: tuple[str, ...]  #: current and legacy fully-qualified names accepted in YAML
    pool: Pool
    properties: type[BaseModel]  #: typed model of the type-specific properties
    flowable: bool = False
    branch_fields: tuple[str, ...] = ()  #: YAML fields holding child tasks
    required_branches: tuple[str, ...] = ()  #: of those, the ones that must be a non-empty list
    #: Pure: renders templates and returns outputs or logs, with no I/O of its own and no engine call that
    #: takes the execution's lock. Consecutive inline task runs are claimed, run and recorded in one
    #: transaction by one message (no broker hop between them; a crash leaves no trace to reconcile).
    inline: bool = False


@dataclass(frozen=True)
class TriggerType:
    """One trigger type Chorus implements."""

    name: str
    kestra_names: tuple[str, ...]
    properties: type[BaseModel]


def _core(package: str, name: str, *legacy: str) -> tuple[str, ...]:
    return (f"io.kestra.plugin.core.{package}.{name}", *legacy)


def _flowable(
    name: str, props: type[BaseModel], *names: str, branches: tuple[str, ...] = _SEQUENTIAL, required: str = "tasks"
) -> TaskType:
    return TaskType(name, names, Pool.CONTROL, props, True, branches, (required,) if required else ())


_TYPES: tuple[TaskType, ...] = (
    # control: runnable
    TaskType("Log", _core("log", "Log", "io.kestra.core.tasks.log.Log"), Pool.CONTROL, p.LogProps, inline=True),
    TaskType(
        "Return",
        _core("debug", "Return", "io.kestra.core.tasks.debugs.Return"),
        Pool.CONTROL,
        p.ReturnProps,
        inline=True,
    ),
    TaskType(
        "Echo", _core("debug", "Echo", "io.kestra.core.tasks.debugs.Echo"), Pool.CONTROL, p.EchoProps, inline=True
    ),
    TaskType(
        "Fail",
        _core("execution", "Fail", "io.kestra.core.tasks.executions.Fail"),
        Pool.CONTROL,
        p.FailProps,
        inline=True,
    ),
    TaskType("Assert", _core("execution", "Assert"), Pool.CONTROL, p.AssertProps, inline=True),
    TaskType("OutputValues", _core("output", "OutputValues"), Pool.CONTROL, p.OutputValuesProps, inline=True),
    TaskType("Sleep", _core("flow", "Sleep"), Pool.CONTROL, p.SleepProps),
    TaskType(
        "Labels", _core("execution", "Labels", "io.kestra.core.tasks.executions.Labels"), Pool.CONTROL, p.LabelsProps
    ),
    TaskType("Resume", _core("execution", "Resume"), Pool.CONTROL, p.ResumeProps),
    TaskType("Fetch", _core("log", "Fetch", "io.kestra.core.tasks.log.Fetch"), Pool.CONTROL, p.FetchProps),
    TaskType("Toggle", _core("trigger", "Toggle", "io.kestra.core.tasks.trigger.Toggle"), Pool.CONTROL, p.ToggleProps),
    TaskType("KVSet", _core("kv", "Set"), Pool.CONTROL, p.KvSetProps),
    TaskType("KVGet", _core("kv", "Get"), Pool.CONTROL, p.KvGetProps),
    TaskType("KVDelete", _core("kv", "Delete"), Pool.CONTROL, p.KvDeleteProps),
    TaskType("KVPut", _core("kv", "Put"), Pool.CONTROL, p.KvPutProps),
    TaskType(
        "Subflow",
        (
            *_core("flow", "Subflow", "io.kestra.plugin.core.flow.Flow", "io.kestra.core.tasks.flows.Subflow"),
            "io.kestra.core.tasks.flows.Flow",
        ),
        Pool.CONTROL,
        p.SubflowProps,
    ),
    # control: flowable
    _flowable(
        "Sequential", prop_types.NoProperties, *_core("flow", "Sequential", "io.kestra.core.tasks.flows.Sequential")
    ),
    _flowable("Parallel", p.ParallelProps, *_core("flow", "Parallel", "io.kestra.core.tasks.flows.Parallel")),
    _flowable(
        "AllowFailure",
        prop_types.NoProperties,
        *_core("flow", "AllowFailure", "io.kestra.core.tasks.flows.AllowFailure"),
    ),
    _flowable("ForEach", p.ForEachProps, *_core("flow", "ForEach")),
    # Kestra 2's Loop runs on ForEach's machinery: one lane of tasks per value, `item` instead of `taskrun.value`.
    _flowable("Loop", kestra2.LoopProps, *_core("flow", "Loop")),
    _flowable(
        "EachSequential",
        p.EachSequentialProps,
        *_core("flow", "EachSequential", "io.kestra.core.tasks.flows.EachSequential"),
    ),
    _flowable(
        "EachParallel", p.EachParallelProps, *_core("flow", "EachParallel", "io.kestra.core.tasks.flows.EachParallel")
    ),
    _flowable(
        "If",
        p.IfProps,
        *_core("flow", "If", "io.kestra.core.tasks.flows.If"),
        branches=("then", "else", "errors", "finally"),
        required="then",
    ),
    # Switch needs cases or defaults; the parser checks that rule itself.
    _flowable(
        "Switch",
        p.SwitchProps,
        *_core("flow", "Switch", "io.kestra.core.tasks.flows.Switch"),
        branches=("cases", "defaults", "errors", "finally"),
        required="",
    ),
    _flowable("Dag", p.DagProps, *_core("flow", "Dag", "io.kestra.core.tasks.flows.Dag")),
    _flowable(
        "Pause",
        p.PauseProps,
        *_core("flow", "Pause", "io.kestra.core.tasks.flows.Pause"),
        branches=("onPause", *_SEQUENTIAL),
        required="",
    ),
    # Kestra 2's Approval: `onWait`, a pause for a reviewer's decision, then `onApprove` or `onDeny`
    # (see orchestrator.core.approval); every branch may be empty.
    _flowable(
        "Approval",
        ApprovalProps,
        *_core("flow", "Approval"),
        branches=("onWait", "onApprove", "onDeny", "errors", "finally"),
        required="",
    ),
    _flowable("LoopUntil", p.LoopUntilProps, *_core("flow", "LoopUntil")),
    # WaitFor is Kestra's older name for LoopUntil (both loop until `condition` holds); it keeps its own
    # short name because its limits differ (Kestra 0.20's defaults, and a last iteration past maxIterations).
    _flowable("WaitFor", p.LoopUntilProps, *_core("flow", "WaitFor")),
    # ForEachItem runs as Kestra runs it: a sequence of three task runs the parser adds as its children
    # (`<id>_split` cuts the items into batch files, `<id>_items` starts one subflow execution per batch,
    # `<id>_merge` gathers the subflows' outputs into one file), so their outputs read as in Kestra.
    TaskType(
        "ForEachItem",
        _core("flow", "ForEachItem", "io.kestra.core.tasks.flows.ForEachItem"),
        Pool.CONTROL,
        p.ForEachItemProps,
        flowable=True,
    ),
    TaskType("ForEachItemSplit", (f"{FOR_EACH_ITEM}$ForEachItemSplit",), Pool.CONTROL, p.ForEachItemSplitProps),
    TaskType(
        "ForEachItemExecutable", (f"{FOR_EACH_ITEM}$ForEachItemExecutable",), Pool.CONTROL, p.ForEachItemBatchesProps
    ),
    TaskType("ForEachItemMerge", (f"{FOR_EACH_ITEM}$ForEachItemMergeOutputs",), Pool.CONTROL, prop_types.NoProperties),
    TaskType(
        "WorkingDirectory",
        _core(
            "flow",
            "WorkingDirectory",
            "io.kestra.core.tasks.flows.WorkingDirectory",
            "io.kestra.core.tasks.flows.Worker",
        ),
        Pool.SCRIPTS,
        p.WorkingDirectoryProps,
        True,
        _SEQUENTIAL,
        ("tasks",),
    ),
    TaskType(
        "LocalFiles",
        _core("storage", "LocalFiles", "io.kestra.core.tasks.storages.LocalFiles"),
        Pool.SCRIPTS,
        p.LocalFilesProps,
    ),
    # control: Kestra's core utility tasks (state, KV keys, storage, namespace files, templating, metrics)
    *(
        TaskType(name, names, pool, props)
        for name, names, pool, props in (
            ("StateGet", _core("state", "Get", "io.kestra.core.tasks.states.Get"), Pool.CONTROL, cp.StateGetProps),
            ("StateSet", _core("state", "Set", "io.kestra.core.tasks.states.Set"), Pool.CONTROL, cp.StateSetProps),
            (
                "StateDelete",
                _core("state", "Delete", "io.kestra.core.tasks.states.Delete"),
                Pool.CONTROL,
                cp.StateDeleteProps,
            ),
            ("KVGetKeys", _core("kv", "GetKeys"), Pool.CONTROL, cp.KvGetKeysProps),
            ("PurgeKV", _core("kv", "PurgeKV"), Pool.CONTROL, cp.PurgeKvProps),
            ("Write", _core("storage", "Write"), Pool.CONTROL, cp.WriteProps),
            (
                "Concat",
                _core("storage", "Concat", "io.kestra.core.tasks.storages.Concat"),
                Pool.CONTROL,
                cp.ConcatProps,
            ),
            ("Split", _core("storage", "Split", "io.kestra.core.tasks.storages.Split"), Pool.CONTROL, cp.SplitProps),
            (
                "Reverse",
                _core("storage", "Reverse", "io.kestra.core.tasks.storages.Reverse"),
                Pool.CONTROL,
                cp.ReverseProps,
            ),
            ("Size", _core("storage", "Size", "io.kestra.core.tasks.storages.Size"), Pool.CONTROL, cp.SizeProps),
            (
                "StorageDelete",
                _core("storage", "Delete", "io.kestra.core.tasks.storages.Delete"),
                Pool.CONTROL,
                cp.StorageDeleteProps,
            ),
            (
                "FilterItems",
                _core("storage", "FilterItems", "io.kestra.core.tasks.storages.FilterItems"),
                Pool.CONTROL,
                cp.FilterItemsProps,
            ),
            (
                "DeduplicateItems",
                _core("storage", "DeduplicateItems", "io.kestra.core.tasks.storages.DeduplicateItems"),
                Pool.CONTROL,
                cp.DeduplicateItemsProps,
            ),
            (
                "PurgeCurrentExecutionFiles",
                _core(
                    "storage",
                    "PurgeCurrentExecutionFiles",
                    "io.kestra.core.tasks.storages.PurgeExecution",
                    "io.kestra.plugin.core.storage.PurgeExecution",
                    # Kestra 2 keeps this older class beside it: the same run (deleteExecutionFiles), the same `uris`.
                    "io.kestra.plugin.core.storage.PurgeInternalStorage",
                ),
                Pool.CONTROL,
                prop_types.NoProperties,
            ),
            # UploadFiles reads its `files` from the WorkingDirectory it runs in, so it shares that pool.
            ("UploadFiles", _core("namespace", "UploadFiles"), Pool.SCRIPTS, cp.UploadFilesProps),
            ("DownloadFiles", _core("namespace", "DownloadFiles"), Pool.CONTROL, cp.DownloadFilesProps),
            ("DeleteFiles", _core("namespace", "DeleteFiles"), Pool.CONTROL, cp.DeleteFilesProps),
            (
                "TemplatedTask",
                _core("templating", "TemplatedTask", "io.kestra.core.tasks.templating.TemplatedTask"),
                Pool.CONTROL,
                cp.TemplatedTaskProps,
            ),
            ("MetricPublish", _core("metric", "Publish"), Pool.CONTROL, cp.MetricPublishProps),
            (
                "Count",
                _core("execution", "Count", "io.kestra.core.tasks.executions.Counts"),
                Pool.CONTROL,
                cp.CountProps,
            ),
            (
                "PurgeExecutions",
                _core(
                    "execution",
                    "PurgeExecutions",
                    "io.kestra.core.tasks.storages.Purge",
                    "io.kestra.plugin.core.storage.Purge",
                ),
                Pool.CONTROL,
                cp.PurgeExecutionsProps,
            ),
            ("PurgeLogs", _core("log", "PurgeLogs"), Pool.CONTROL, cp.PurgeLogsProps),
            ("PurgeMetrics", _core("metric", "PurgeMetrics"), Pool.CONTROL, cp.PurgeMetricsProps),
            ("PurgeFlows", _core("flow", "PurgeFlows"), Pool.CONTROL, cp.PurgeFlowsProps),
            ("PurgeStorage", _core("storage", "PurgeStorage"), Pool.CONTROL, cp.PurgeStorageProps),
            ("SetVariables", _core("execution", "SetVariables"), Pool.CONTROL, cp.SetVariablesProps),
            ("Exit", _core("execution", "Exit"), Pool.CONTROL, cp.ExitProps),
            ("Kill", _core("execution", "Kill"), Pool.CONTROL, cp.KillProps),
            ("UnsetVariables", _core("execution", "UnsetVariables"), Pool.CONTROL, cp.UnsetVariablesProps),
        )
    ),
    # io
    TaskType("HttpRequest", _core("http", "Request", "io.kestra.plugin.fs.http.Request"), Pool.IO, p.HttpRequestProps),
    TaskType(
        "HttpDownload", _core("http", "Download", "io.kestra.plugin.fs.http.Download"), Pool.IO, p.HttpDownloadProps
    ),
    TaskType(
        "SlackIncomingWebhook",
        ("io.kestra.plugin.notifications.slack.SlackIncomingWebhook",),
        Pool.IO,
        p.SlackWebhookProps,
    ),
    # Sent through the notification outbox like Slack's (orchestrator/engine/notification_outbox.py).
    TaskType(
        "TeamsIncomingWebhook",
        ("io.kestra.plugin.notifications.teams.TeamsIncomingWebhook",),
        Pool.IO,
        p.IncomingWebhookProps,
    ),
    TaskType(
        "DiscordIncomingWebhook",
        ("io.kestra.plugin.notifications.discord.DiscordIncomingWebhook",),
        Pool.IO,
        p.IncomingWebhookProps,
    ),
    TaskType(
        "GoogleChatIncomingWebhook",
        ("io.kestra.plugin.notifications.google.GoogleChatIncomingWebhook",),
        Pool.IO,
        p.IncomingWebhookProps,
    ),
    TaskType("JiraCreate", ("io.kestra.plugin.notifications.jira.JiraCreate",), Pool.IO, p.JiraCreateProps),
    TaskType("MailSend", ("io.kestra.plugin.notifications.mail.MailSend",), Pool.IO, p.MailSendProps),
    # scripts
    TaskType("PythonScript", ("io.kestra.plugin.scripts.python.Script",), Pool.SCRIPTS, p.ScriptProps),
    TaskType("PythonCommands", ("io.kestra.plugin.scripts.python.Commands",), Pool.SCRIPTS, p.CommandsProps),
    TaskType("ShellScript", ("io.kestra.plugin.scripts.shell.Script",), Pool.SCRIPTS, p.ScriptProps),
    TaskType("ShellCommands", ("io.kestra.plugin.scripts.shell.Commands",), Pool.SCRIPTS, p.CommandsProps),
    # ai
    TaskType(
        "ChatCompletion",
        (
            "io.kestra.plugin.ai.openai.ChatCompletion",
            "io.kestra.plugin.openai.ChatCompletion",
            "io.kestra.plugin.ai.completion.ChatCompletion",
        ),
        Pool.AI,
        p.ChatCompletionProps,
    ),
    TaskType("AIAgent", ("io.kestra.plugin.ai.agent.AIAgent",), Pool.AI, p.AIAgentProps),
    # An AIAgent's call to one tool of an MCP server: made from its tool entry, one task run per call.
    TaskType("McpToolCall", (), Pool.IO, p.McpToolCallProps),
    # Chorus extension: its effect is the outbox row the engine writes in the task run's own transaction.
    TaskType("Publish", ("io.chorus.event.Publish",), Pool.CONTROL, event_props.PublishProps, inline=True),
)

_TRIGGER_TYPES: tuple[TriggerType, ...] = (
    TriggerType(
        "Schedule",
        ("io.kestra.plugin.core.trigger.Schedule", "io.kestra.core.models.triggers.types.Schedule"),
        trigger_props.ScheduleProps,
    ),
    TriggerType(
        "ScheduleOnDates", ("io.kestra.plugin.core.trigger.ScheduleOnDates",), trigger_props.ScheduleOnDatesProps
    ),
    TriggerType(
        "Webhook",
        ("io.kestra.plugin.core.trigger.Webhook", "io.kestra.core.models.triggers.types.Webhook"),
        trigger_props.WebhookProps,
    ),
    TriggerType(
        "Flow",
        ("io.kestra.plugin.core.trigger.Flow", "io.kestra.core.models.triggers.types.Flow"),
        kestra2.FlowTriggerProps,
    ),
    TriggerType(
        "HttpTrigger",
        ("io.kestra.plugin.core.http.Trigger", "io.kestra.plugin.fs.http.Trigger"),
        trigger_props.HttpTriggerProps,
    ),
    # Marks the flow as a tool of the MCP server (and a skill of the A2A cards); nothing is scheduled.
    TriggerType("McpToolTrigger", ("io.kestra.plugin.core.trigger.McpToolTrigger",), tool_schema.McpToolTriggerProps),
    # Chorus extensions (orchestrator.engine.events, orchestrator.realtime_*).
    TriggerType("Event", ("io.chorus.trigger.Event",), event_props.EventTriggerProps),
    TriggerType("RedisStream", ("io.chorus.trigger.RedisStream",), event_props.RedisStreamTriggerProps),
    TriggerType("AmqpRealtime", ("io.kestra.plugin.amqp.RealtimeTrigger",), event_props.AmqpTriggerProps),
)

CATALOGUE: Mapping[str, TaskType] = MappingProxyType({t.name: t for t in _TYPES})
TRIGGERS: Mapping[str, TriggerType] = MappingProxyType({t.name: t for t in _TRIGGER_TYPES})

_TASKS_BY_NAME = {name: t for t in _TYPES for name in (t.name, *t.kestra_names)}
_TRIGGERS_BY_NAME = {name: t for t in _TRIGGER_TYPES for name in (t.name, *t.kestra_names)}


#: Kestra task types Chorus does not run, with why; `chorus flow validate` names them as such.
_UNSUPPORTED: Mapping[str, str] = MappingProxyType(
    {
        "io.kestra.plugin.core.flow.Template": "Kestra's deprecated Template task (use a Subflow)",
        "io.kestra.core.tasks.flows.Template": "Kestra's deprecated Template task (use a Subflow)",
        "io.kestra.plugin.core.flow.Wait": "not implemented yet",
    }
)


def unsupported(type_name: str) -> str | None:
    """Why a Kestra task type Chorus does not implement is refused, or None for a name Kestra does not know
    either (most likely a typo)."""
    if type_name in _UNSUPPORTED:
        return _UNSUPPORTED[type_name]
    if type_name.startswith("io.kestra.plugin.") and not type_name.startswith("io.kestra.plugin.core."):
        return "a Kestra plugin Chorus does not ship (its catalogue is in the README)"
    return None


def resolve(type_name: str) -> TaskType:
    """Return the task type for a Kestra name (current or legacy) or short name; raise KeyError."""
    return _TASKS_BY_NAME[type_name]


def resolve_trigger(type_name: str) -> TriggerType:
    """Return the trigger type for a Kestra name or short name; raise KeyError."""
    return _TRIGGERS_BY_NAME[type_name]


def _closest(type_name: str, known: Iterable[str]) -> str | None:
    names = [n for n in known if "." in n]
    # The right class in the wrong package ("io.kestra.core.tasks.flows.Sleep") is the common slip,
    # and plain string similarity would rather suggest a sibling class of the wrong package.
    simple = type_name.rsplit(".", 1)[-1].lower()
    same_class = [n for n in names if n.rsplit(".", 1)[-1].lower() == simple]
    match = difflib.get_close_matches(type_name, same_class or names, n=1, cutoff=0.0 if same_class else 0.6)
    return match[0] if match else None


def suggest(type_name: str) -> str | None:
    """Return the closest known task type name, for "did you mean" hints, or None."""
    return _closest(type_name, _TASKS_BY_NAME)


def suggest_trigger(type_name: str) -> str | None:
    """Return the closest known trigger type name, or None."""
    return _closest(type_name, _TRIGGERS_BY_NAME)


def default_applies(default_type: str, type_name: str) -> bool:
    """Tell whether a ``pluginDefaults`` entry of ``default_type`` applies to a task or trigger type.

    As in Kestra, the default's type is either a full type name (any alias of the same type
    matches) or a package prefix such as ``io.kestra.plugin.core``.
    """
    names = {type_name}
    for table in (_TASKS_BY_NAME, _TRIGGERS_BY_NAME):
        known = table.get(type_name)
        if known is not None:
            names.update(known.kestra_names)
            names.add(known.name)
    if default_type in names:
        return True
    prefix = default_type.rstrip(".") + "."
    return any(name.startswith(prefix) for name in names)


def apply_plugin_defaults(
    type_name: str, raw: Mapping[str, JsonValue], defaults: Sequence[PluginDefault]
) -> tuple[dict[str, JsonValue], dict[str, int]]:
    """Apply the matching ``pluginDefaults`` to a task's (or trigger's) raw properties.

    Forced defaults override what the task says; the others only fill what it leaves out. Mappings
    are merged key by key, anything else is replaced whole. Return the merged properties and, for
    each property a default supplied, the index of that default.
    """
    merged = dict(raw)
    sources: dict[str, int] = {}
    for index, default in enumerate(defaults):
        if not default_applies(default.type, type_name):
            continue
        for key, value in default.values.items():
            if key in ("id", "type"):
                continue
            if merged.get(key) is None or default.forced:
                merged[key] = _deep_merge(merged[key], value) if merged.get(key) is not None else value
                sources[key] = index
            elif isinstance(merged[key], dict) and isinstance(value, dict):
                merged[key] = _deep_merge(value, merged[key])
    return merged, sources


def _deep_merge(base: JsonValue, override: JsonValue) -> JsonValue:
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = _deep_merge(merged[key], value) if key in merged else value
        return merged
    return override
