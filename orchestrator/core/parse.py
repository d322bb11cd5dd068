"""YAML text -> Flow, every validation error carrying its field path and 1-based line/column.

:mod:`orchestrator.core.yamldoc` loads the text safely into plain values and field positions;
``_Reader`` walks those values, checks them against the flow model, the task catalogue and
Kestra's cross-field rules, and collects every problem before raising one FlowInvalid.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, JsonValue, ValidationError

from orchestrator.core import agent, kestra2, tasktypes
from orchestrator.core import inputs as input_decl
from orchestrator.core.condition_props import condition_problems
from orchestrator.core.durations import is_expression, parse_duration
from orchestrator.core.errors import FlowErrorDetail, FlowInvalid
from orchestrator.core.expression_check import expression_problems, strings_at, value_at, yaml_position
from orchestrator.core.flow import (
    Concurrency,
    Flow,
    FlowOutput,
    Input,
    InputType,
    Label,
    PluginDefault,
    RetrySpec,
    TaskSpec,
    TriggerSpec,
)
from orchestrator.core.flow_conditions import regex_problems
from orchestrator.core.yamldoc import MAX_DOCUMENT_BYTES, Position, load_yaml

__all__ = ["MAX_DOCUMENT_BYTES", "load_document", "parse_flow", "parse_flow_with_warnings", "split_documents"]

M = TypeVar("M", bound=BaseModel)

# Kestra's patterns (AbstractFlow, TaskInterface, AbstractTrigger), applied to the whole value.
FLOW_ID = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9._-]*")
NAMESPACE = re.compile(r"[a-z0-9][a-z0-9._-]*")
TASK_ID = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_-]*")


def load_document(text: str) -> dict[str, Any]:
    """Parse YAML text safely into a plain dict; raise FlowInvalid on any YAML or limit problem."""
    value, _ = load_yaml(text)
    if not isinstance(value, dict):
        raise FlowInvalid([FlowErrorDetail("", f"a flow must be a YAML mapping, not {_kind(value)}", 1, 1)])
    return value


_SEPARATOR = re.compile(r"^---[ \t]*(?:\r?\n|\Z)", re.MULTILINE)
_COMMENT_OR_BLANK = re.compile(r"^\s*(#.*)?$")


def split_documents(text: str) -> list[str]:
    """Split multi-document text on ``---`` lines; chunks holding only blanks and comments are dropped."""
    chunks = _SEPARATOR.split(text)
    return [c for c in chunks if not all(_COMMENT_OR_BLANK.match(line) for line in c.splitlines())]


def parse_flow(text: str) -> Flow:
    """Parse and validate one flow document; raise FlowInvalid listing every problem found."""
    return parse_flow_with_warnings(text)[0]


def parse_flow_with_warnings(text: str) -> tuple[Flow, list[FlowErrorDetail]]:
    """Parse and validate one flow document, also returning what is suspect but not refused.

    Warnings are expression syntax errors: Kestra deploys such a flow and fails the task that renders the
    expression (its own test flows rely on that), so Chorus says so at deploy and still accepts the flow.
    """
    value, positions = load_yaml(text)
    if not isinstance(value, dict):
        raise FlowInvalid([FlowErrorDetail("", f"a flow must be a YAML mapping, not {_kind(value)}", 1, 1)])
    reader = _Reader(positions, text.splitlines())
    flow = reader.read(value)
    if reader.errors or flow is None:
        raise FlowInvalid(sorted(reader.errors, key=lambda e: (e.line or 0, e.column or 0)))
    return flow, sorted(reader.warnings, key=lambda e: (e.line or 0, e.column or 0))


def _kind(value: object) -> str:
    return {dict: "a mapping", list: "a list", str: "text", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_PARENT = re.compile(r"(\.[^.\[\]]*|\[\d+\])$")
# `deleted` appears in sources Kestra exports and is ignored; `taskDefaults` is pluginDefaults' old name.
_TOP_LEVEL = (
    "id", "namespace", "revision", "description", "labels", "inputs", "variables", "tasks", "errors", "finally",
    "afterExecution", "triggers", "pluginDefaults", "taskDefaults", "concurrency", "outputs", "retry", "sla",
    "disabled", "deleted", "checks",
)  # fmt: skip
_COMMON_TASK = (
    "id", "type", "version", "description", "retry", "timeout", "disabled", "workerGroup", "logLevel",
    "allowFailure", "allowWarning", "logToFile", "runIf", "when", "taskCache",
)  # fmt: skip
_COMMON_FLAGS = (
    ("disabled", "disabled"), ("allowFailure", "allow_failure"), ("allowWarning", "allow_warning"),
    ("logToFile", "log_to_file"),
)  # fmt: skip
_LOG_LEVELS = ("ERROR", "WARN", "INFO", "DEBUG", "TRACE")
_TOOL_COMMON = ("type", "description", "requireApproval")
#: The keys each kind of AIAgent tool accepts.
_TOOL_KEYS = {
    "task": (*_TOOL_COMMON, "tasks", "parameters"),
    "flow": (*_TOOL_COMMON, "namespace", "flowId", "revision", "inputs", "labels", "inheritLabels"),
    "mcp-stdio": (*_TOOL_COMMON, "command", "env", "logEvents", "timeout"),
    "mcp-http": (*_TOOL_COMMON, "url", "headers", "logEvents", "timeout"),
}
_SECTIONS = (("tasks", "tasks"), ("errors", "errors"), ("finally", "finally_"), ("afterExecution", "after_execution"))


class _Reader:
    """Walks a flow document, building the model and collecting every error with its position."""

    def __init__(self, positions: dict[str, Position], source: list[str] | None = None) -> None:
        self.positions = positions
        self.source = source or []
        self.errors: list[FlowErrorDetail] = []
        self.warnings: list[FlowErrorDetail] = []
        self.task_paths: dict[str, str] = {}  # task id -> path of its first definition
        self.plugin_defaults: list[tuple[str, PluginDefault]] = []
        self.subflows: list[tuple[str, JsonValue, JsonValue]] = []  # (path, namespace, flowId)
        self.task_properties: list[tuple[str, JsonValue]] = []

    # -- errors --------------------------------------------------------------------------------

    def error(self, path: str, message: str, *, at_key: bool = False, suggestion: str | None = None) -> None:
        line, column = self._where(path, at_key)
        self.errors.append(FlowErrorDetail(path, message, line, column, suggestion))

    def _where(self, path: str, at_key: bool) -> tuple[int | None, int | None]:
        probe = path
        while True:
            pos = self.positions.get(probe)
            if pos is not None:
                exact = probe == path
                return (pos.key_line, pos.key_column) if at_key and exact else (pos.line, pos.column)
            if not probe:
                return None, None
            parent = _PARENT.sub("", probe)
            probe = "" if parent == probe else parent  # a top-level key's parent is the document

    def unknown_keys(self, data: Mapping[str, Any], known: Iterable[str], path: str, what: str) -> None:
        allowed = list(known)
        for key in data:
            if key not in allowed:
                hint = difflib.get_close_matches(key, allowed, n=1)
                self.error(_join(path, key), f"unknown property '{key}' {what}", at_key=True, suggestion=_first(hint))

    def model(self, cls: type[M], data: object, path: str, what: str) -> M | None:
        """Validate a mapping with a pydantic model, reporting its errors at their YAML positions."""
        if not isinstance(data, dict):
            self.error(path, f"expected a mapping, got {_kind(data)}")
            return None
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            known = [f.alias or name for name, f in cls.model_fields.items()]
            for err in e.errors(include_url=False):
                self._model_error(err, path, what, known)
            return None

    def _model_error(self, err: Any, path: str, what: str, known: list[str]) -> None:
        loc = err["loc"]
        where = path + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc)
        kind = err["type"]
        if kind == "missing":
            self.error(where, f"missing required property '{loc[-1]}' {what}")
        elif kind == "extra_forbidden":
            hint = difflib.get_close_matches(str(loc[-1]), known, n=1) if len(loc) == 1 else []
            self.error(where, f"unknown property '{loc[-1]}' {what}", at_key=True, suggestion=_first(hint))
        else:
            message = str(err["msg"]).removeprefix("Value error, ")
            if kind != "value_error" and not isinstance(err.get("input"), dict | list):
                message += f" (got {_show(err.get('input'))})"
            self.error(where, message)

    # -- the flow ------------------------------------------------------------------------------

    def read(self, data: dict[str, JsonValue]) -> Flow | None:
        self.unknown_keys(data, _TOP_LEVEL, "", "at the top level of a flow")
        flow_id = self.identifier(data, "id", "", FLOW_ID, 100, "letters, digits, '.', '_' and '-'")
        namespace = self.identifier(
            data, "namespace", "", NAMESPACE, 150, "lowercase letters, digits, '.', '_' and '-'"
        )
        fields: dict[str, Any] = {
            "description": self.text(data, "description", ""),
            "disabled": self.flag(data, "disabled", "", default=False),
            "labels": self.labels(data.get("labels"), "labels"),
            "variables": self.mapping(data, "variables", "") or {},
            "inputs": self.inputs(data.get("inputs")),
            "sla": data.get("sla"),
        }
        revision = data.get("revision")
        if revision is not None and (not isinstance(revision, int) or isinstance(revision, bool) or revision < 1):
            self.error("revision", f"expected a positive integer, got {_show(revision)}")
        fields["revision"] = revision if isinstance(revision, int) and not isinstance(revision, bool) else None
        fields["plugin_defaults"] = self.defaults(data)
        for key, attr in _SECTIONS:
            fields[attr] = self.task_list(data.get(key), key, required=key == "tasks")
        if data.get("tasks") is None:
            self.error("tasks", "missing required property 'tasks': a flow needs at least one task")
        fields["triggers"] = self.triggers(data.get("triggers"))
        fields["checks"] = self.checks(data.get("checks"))
        fields["outputs"] = self.outputs(data.get("outputs"))
        if data.get("concurrency") is not None:
            fields["concurrency"] = self.model(Concurrency, data["concurrency"], "concurrency", "in concurrency")
        if data.get("retry") is not None:
            fields["retry"] = self.model(RetrySpec, data["retry"], "retry", "in a retry policy")
        if data.get("sla") is not None and not isinstance(data["sla"], list):
            self.error("sla", f"expected a list, got {_kind(data['sla'])}")
        self.check_subflows(flow_id, namespace)
        self.check_references(fields["inputs"])
        self.check_expressions(data)
        if self.errors or flow_id is None or namespace is None:
            return None
        return Flow(id=flow_id, namespace=namespace, **fields)

    def identifier(
        self, data: Mapping[str, JsonValue], key: str, path: str, pattern: re.Pattern[str], size: int, allowed: str
    ) -> str | None:
        value = data.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)  # Jackson reads `id: 1` as the text "1"
        where = _join(path, key)
        if value is None:
            self.error(where, f"missing required property '{key}'")
        elif not isinstance(value, str) or not pattern.fullmatch(value) or len(value) > size:
            self.error(
                where, f"invalid {key} {_show(value)}: at most {size} {allowed}, starting with a letter or digit"
            )
        else:
            return value
        return None

    def text(self, data: Mapping[str, JsonValue], key: str, path: str) -> str | None:
        value = data.get(key)
        if value is None or isinstance(value, str):
            return value
        self.error(_join(path, key), f"expected text, got {_kind(value)}")
        return None

    def flag(self, data: Mapping[str, JsonValue], key: str, path: str, *, default: bool) -> bool:
        value = data.get(key, default)
        if isinstance(value, bool):
            return value
        self.error(_join(path, key), f"expected true or false, got {_show(value)}")
        return default

    def mapping(self, data: Mapping[str, JsonValue], key: str, path: str) -> dict[str, JsonValue] | None:
        value = data.get(key)
        if value is None or isinstance(value, dict):
            return value
        self.error(_join(path, key), f"expected a mapping, got {_kind(value)}")
        return None

    def labels(self, value: JsonValue, path: str) -> tuple[Label, ...]:
        pairs: list[tuple[str, str, JsonValue]] = []
        if isinstance(value, dict):
            pairs = [(_join(path, k), k, v) for k, v in value.items()]
        elif isinstance(value, list):
            for i, item in enumerate(value):
                where = f"{path}[{i}]"
                if not isinstance(item, dict) or set(item) != {"key", "value"} or not isinstance(item["key"], str):
                    self.error(where, "expected a label as {key: ..., value: ...}")
                else:
                    pairs.append((f"{where}.value", item["key"], item["value"]))
        elif value is not None:
            self.error(path, "expected labels as a mapping or a list of {key, value}")
        labels = []
        for where, key, raw in pairs:
            if key.startswith("system.") and key != "system.readOnly":
                self.error(where, f"label '{key}' is a system label, which only Kestra itself may set", at_key=True)
            elif isinstance(raw, str | int | float | bool):
                labels.append(Label(key=key, value=str(raw).lower() if isinstance(raw, bool) else str(raw)))
            else:
                self.error(where, f"expected a label value as text, got {_kind(raw)}")
        return tuple(labels)

    def defaults(self, data: Mapping[str, JsonValue]) -> tuple[PluginDefault, ...]:
        for key in ("pluginDefaults", "taskDefaults"):  # taskDefaults is Kestra's deprecated name
            value = data.get(key)
            if value is not None and not isinstance(value, list):
                self.error(key, f"expected a list, got {_kind(value)}")
            elif isinstance(value, list):
                for i, item in enumerate(value):
                    default = self.model(PluginDefault, item, f"{key}[{i}]", "in a plugin default")
                    if default is not None:
                        self.plugin_defaults.append((f"{key}[{i}]", default))
        return tuple(d for _, d in self.plugin_defaults)

    # -- inputs and outputs --------------------------------------------------------------------

    def inputs(self, value: JsonValue) -> tuple[Input, ...]:
        declared = self.declarations(value, "inputs")
        ids = {spec.id for _, spec in declared}
        seen: dict[str, str] = {}
        for where, spec in declared:
            if spec.id in seen:
                self.error(f"{where}.id", f"duplicate input id '{spec.id}' (first declared at {seen[spec.id]})")
            for other in seen:
                if spec.id.startswith(other + ".") or other.startswith(spec.id + "."):
                    self.error(f"{where}.id", f"input '{spec.id}' conflicts with '{other}': one nests under the other")
            seen.setdefault(spec.id, where)
            for dep in spec.depends_on:
                if dep not in ids:
                    self.error(f"{where}.dependsOn", f"input '{spec.id}' depends on an unknown input '{dep}'")
        cycle = _find_cycle({spec.id: list(spec.depends_on) for _, spec in declared})
        if cycle:
            message = f"inputs depend on each other in a cycle: {' -> '.join(cycle)}"
            self.error(f"{seen[cycle[0]]}.dependsOn", message)
        return tuple(spec for _, spec in declared)

    def declarations(self, value: JsonValue, path: str) -> list[tuple[str, Input]]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.error(path, f"expected a list of inputs, got {_kind(value)}")
            return []
        declared = []
        for i, raw in enumerate(value):
            where = f"{path}[{i}]"
            if not isinstance(raw, dict):
                self.error(where, f"expected an input declaration (a mapping), got {_kind(raw)}")
                continue
            pos = self.positions.get(where)
            spec, problems = input_decl.read_declaration(raw, pos.line if pos else 0, pos.column if pos else 0)
            for problem in problems:
                target = _join(where, problem.key) if problem.key else where
                self.error(target, problem.message, at_key=problem.at_key, suggestion=problem.suggestion)
            if spec is not None:
                declared.append((where, spec))
        return declared

    def outputs(self, value: JsonValue) -> tuple[FlowOutput, ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            self.error("outputs", f"expected a list of outputs, got {_kind(value)}")
            return ()
        outputs: list[FlowOutput] = []
        for i, raw in enumerate(value):
            where = f"outputs[{i}]"
            if not isinstance(raw, dict):
                self.error(where, f"expected an output (a mapping), got {_kind(raw)}")
                continue
            self.unknown_keys(
                raw, ("id", "type", "value", "description", "displayName", "required"), where, "on an output"
            )
            output_id = self.identifier(raw, "id", where, input_decl.INPUT_ID, 256, "letters, digits, '.', '_', '-'")
            if output_id is not None and output_id in {o.id for o in outputs}:
                self.error(f"{where}.id", f"duplicate output id '{output_id}'")
            declared = raw.get("type", "STRING")
            if declared not in InputType.__members__:
                self.error(f"{where}.type", f"unknown output type {_show(declared)}")
            elif output_id is not None:
                outputs.append(FlowOutput(
                    id=output_id, type=InputType(str(declared)), value=raw.get("value"),
                    description=self.text(raw, "description", where), display_name=self.text(raw, "displayName", where),
                    required=self.flag(raw, "required", where, default=True),
                ))  # fmt: skip
        return tuple(outputs)

    # -- tasks ---------------------------------------------------------------------------------

    def task_list(self, value: JsonValue, path: str, *, required: bool = False) -> tuple[TaskSpec, ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            self.error(path, f"expected a list of tasks, got {_kind(value)}")
            return ()
        if required and not value:
            self.error(path, "must contain at least one task")
        tasks = (self.task(raw, f"{path}[{i}]") for i, raw in enumerate(value))
        return tuple(t for t in tasks if t is not None)

    def task(self, raw: JsonValue, path: str) -> TaskSpec | None:
        if not isinstance(raw, dict):
            self.error(path, f"expected a task (a mapping with id and type), got {_kind(raw)}")
            return None
        task_id = self.identifier(raw, "id", path, TASK_ID, 256, "letters, digits, '_' and '-'")
        if task_id is not None:
            if task_id in self.task_paths:
                self.error(
                    _join(path, "id"), f"duplicate task id '{task_id}' (first used at {self.task_paths[task_id]})"
                )
            self.task_paths.setdefault(task_id, path)
        type_name = raw.get("type")
        if not isinstance(type_name, str):
            self.error(
                _join(path, "type"), "missing required property 'type'" if type_name is None else "expected text"
            )
            return None
        try:
            task_type = tasktypes.resolve(type_name)
        except KeyError:
            reason = tasktypes.unsupported(type_name)
            if reason is not None:
                self.error(_join(path, "type"), f"task type '{type_name}' is not supported by Chorus: {reason}")
                return None
            suggestion = tasktypes.suggest(type_name)
            self.error(_join(path, "type"), f"unknown task type '{type_name}'", suggestion=suggestion)
            return None
        merged = self.with_defaults(type_name, raw, path)
        declared = {f.alias or n for n, f in task_type.properties.model_fields.items()}
        what = f"on {_a(task_type.name)} {task_type.name} task"
        self.unknown_keys(merged, sorted(declared | {*_COMMON_TASK, *task_type.branch_fields}), path, what)
        # A type may declare a common name as its own property (JiraCreate's description): it is both.
        props: dict[str, JsonValue] = {k: v for k, v in merged.items() if k in declared and v is not None}
        self.model(task_type.properties, props, path, what)
        self.task_properties.append((path, props))
        if task_type.name == "Subflow":
            self.subflows.append((path, props.get("namespace"), props.get("flowId")))
        if task_type.name == "Pause" and isinstance(props.get("onResume"), list):
            self.declarations(props["onResume"], _join(path, "onResume"))
        if task_type.name == "Approval" and isinstance(props.get("inputs"), list):
            self.declarations(props["inputs"], _join(path, "inputs"))
        branches = self.branches(task_type, merged, path)
        tools = self.agent_tools(task_id, props.get("tools"), path) if task_type.name == "AIAgent" else ()
        if task_id is None:
            return None
        if task_type.name == "ForEachItem":
            branches = {"tasks": self.for_each_item_children(task_id, props, path)}
        if task_type.name == "WorkingDirectory":
            self.working_directory_children(branches.get("tasks", ()), path)
        return TaskSpec(
            id=task_id, type=task_type.name, type_name=type_name, properties=props, branches=branches, tools=tools,
            line=self._where(path, False)[0] or 0, column=self._where(path, False)[1] or 0,
            **self.common(merged, path),
        )  # fmt: skip

    def working_directory_children(self, children: tuple[TaskSpec, ...], path: str) -> None:
        """Kestra's WorkingDirectoryTaskValidator: runnable children only, and no worker group of their own."""
        for index, child in enumerate(children):
            where = f"{path}.tasks[{index}]"
            if tasktypes.CATALOGUE[child.type].flowable or child.type == "Subflow":
                self.error(where, "Only runnable tasks are allowed as children of a WorkingDirectory task")
            elif child.worker_group is not None:
                self.error(
                    where,
                    "Cannot set a Worker Group in any WorkingDirectory sub-tasks, "
                    "it is only supported at the WorkingDirectory level",
                )

    def for_each_item_children(self, task_id: str, props: dict[str, JsonValue], path: str) -> tuple[TaskSpec, ...]:
        """The three task runs Kestra makes of a ForEachItem, as its sequence of children."""
        line, column = self._where(path, False)
        split = {k: v for k, v in props.items() if k in ("items", "batch")}
        batches = {k: v for k, v in props.items() if k not in ("items", "batch")}
        children = []
        for suffix, kind, child_props in (
            ("split", "ForEachItemSplit", split),
            ("items", "ForEachItemExecutable", batches),
            ("merge", "ForEachItemMerge", {}),
        ):
            child_id = f"{task_id}_{suffix}"
            if child_id in self.task_paths:
                self.error(
                    _join(path, "id"),
                    f"task id '{child_id}' (used at {self.task_paths[child_id]}) is taken by this ForEachItem's "
                    f"'{suffix}' step",
                )
            self.task_paths.setdefault(child_id, f"{path}, by ForEachItem '{task_id}' for its {suffix} step")
            type_name = tasktypes.CATALOGUE[kind].kestra_names[0]
            children.append(
                TaskSpec(id=child_id, type=kind, type_name=type_name, properties=child_props, line=line or 0,
                         column=column or 0)
            )  # fmt: skip
        return tuple(children)

    def with_defaults(self, type_name: str, raw: dict[str, JsonValue], path: str) -> dict[str, JsonValue]:
        defaults = [default for _, default in self.plugin_defaults]
        merged, sources = tasktypes.apply_plugin_defaults(type_name, raw, defaults)
        for key, index in sources.items():
            # An error in an injected value is reported where the default supplied it.
            source = self.positions.get(f"{self.plugin_defaults[index][0]}.values.{key}")
            if source is not None:
                self.positions[_join(path, key)] = source
        return merged

    def common(self, data: Mapping[str, JsonValue], path: str) -> dict[str, Any]:
        fields: dict[str, Any] = {"description": self.text(data, "description", path)}
        for key, attr in _COMMON_FLAGS:
            fields[attr] = self.flag(data, key, path, default=False)
        if data.get("retry") is not None:
            fields["retry"] = self.model(RetrySpec, data["retry"], _join(path, "retry"), "in a retry policy")
        timeout = data.get("timeout")
        if timeout is not None:
            try:
                if not isinstance(timeout, str) or is_expression(timeout):
                    raise ValueError("expected a literal ISO-8601 duration such as PT5M")
                fields["timeout"] = parse_duration(timeout)
            except ValueError as e:
                self.error(_join(path, "timeout"), str(e))
        run_if = data.get("when", data.get("runIf"))  # Kestra 2 renamed runIf to when
        if data.get("when") is not None and data.get("runIf") is not None:
            self.error(_join(path, "when"), "'when' is Kestra 2's name for 'runIf': give only one of them")
        if run_if is not None:
            fields["run_if"] = str(run_if).lower() if isinstance(run_if, bool) else str(run_if)
        level = data.get("logLevel")
        if level is not None and level not in _LOG_LEVELS:
            self.error(_join(path, "logLevel"), f"expected one of {', '.join(_LOG_LEVELS)}, got {_show(level)}")
        fields["log_level"] = level if level in _LOG_LEVELS else None
        group = data.get("workerGroup")
        if group is not None:
            if isinstance(group, dict) and isinstance(group.get("key"), str) and set(group) <= {"key", "fallback"}:
                fields["worker_group"] = group["key"]
            else:
                self.error(_join(path, "workerGroup"), "expected a mapping with a 'key' (and optional 'fallback')")
        fields["task_cache"] = self.mapping(data, "taskCache", path)
        return fields

    def branches(
        self, task_type: tasktypes.TaskType, data: Mapping[str, JsonValue], path: str
    ) -> dict[str, tuple[TaskSpec, ...]]:
        branches: dict[str, tuple[TaskSpec, ...]] = {}
        for field in (k for k in data if k in task_type.branch_fields):
            where = _join(path, field)
            value = data[field]
            if task_type.name == "Switch" and field == "cases":
                if value is not None and not isinstance(value, dict):
                    self.error(where, f"expected a mapping of case values to task lists, got {_kind(value)}")
                for case, tasks in (value or {}).items() if isinstance(value, dict) else ():
                    branches[f"cases.{case}"] = self.task_list(tasks, _join(where, case), required=True)
                    if tasks is None:
                        self.error(_join(where, case), "must contain at least one task")
            elif task_type.name == "Dag" and field == "tasks":
                branches["tasks"] = self.dag(value, where)
            elif task_type.name == "Pause" and field == "onPause":
                # Kestra 2: one task (a list of one is read the same way).
                branches[field] = self.task_list([value] if isinstance(value, dict) else value, where, required=False)
            else:
                branches[field] = self.task_list(value, where, required=field in task_type.required_branches)
        for field in task_type.required_branches:
            if data.get(field) is None:
                self.error(
                    _join(path, field),
                    f"missing required property '{field}' on {_a(task_type.name)} {task_type.name} task",
                )
        if task_type.name == "Switch" and not data.get("cases") and not data.get("defaults"):
            self.error(_join(path, "cases"), "a Switch needs tasks in 'cases' or 'defaults'")
        return branches

    def agent_tools(self, agent_id: str | None, value: JsonValue, path: str) -> tuple[TaskSpec, ...]:
        """An AIAgent's `tools`: known types with their fields; task and flow tools become task specs."""
        if not isinstance(value, list):
            return ()  # an expression: checked when rendered
        specs: list[TaskSpec] = []
        for index, entry in enumerate(value):
            where = f"{_join(path, 'tools')}[{index}]"
            if not isinstance(entry, dict):
                self.error(where, f"expected a tool (a mapping with a type), got {_kind(entry)}")
                continue
            kind = agent.tool_kind(entry.get("type"))
            if kind is None:
                known = ", ".join(k for k in agent.TOOL_KINDS if "." in k)
                self.error(_join(where, "type"), f"unknown tool type {_show(entry.get('type'))}; known: {known}")
                continue
            self.unknown_keys(entry, _TOOL_KEYS[kind], where, f"on a {entry['type']} tool")
            if kind == "task":
                if entry.get("tasks") is None:
                    self.error(_join(where, "tasks"), "missing required property 'tasks' on a KestraTask tool")
                tasks = self.task_list(entry.get("tasks"), _join(where, "tasks"), required=True)
                for i, task in enumerate(tasks):
                    if tasktypes.CATALOGUE[task.type].flowable or task.type in ("Subflow", "AIAgent"):
                        self.error(
                            f"{_join(where, 'tasks')}[{i}]", f"a KestraTask tool runs runnable tasks, not {task.type}"
                        )
                specs += tasks
            elif kind == "flow":
                flow_spec = self.flow_tool(agent_id, index, entry, where)
                specs += [flow_spec] if flow_spec is not None else []
            else:
                mcp_spec = self.mcp_tool(agent_id, index, kind, entry, where)
                specs += [mcp_spec] if mcp_spec is not None else []
        return tuple(specs)

    def mcp_tool(
        self, agent_id: str | None, index: int, kind: str, entry: Mapping[str, JsonValue], where: str
    ) -> TaskSpec | None:
        """The McpToolCall task that calls the tools of an MCP server entry, one task run per call."""
        if kind == "mcp-stdio":
            command = entry.get("command")
            if not (
                is_expression(command)
                or (isinstance(command, list) and command and all(isinstance(c, str) for c in command))
            ):
                self.error(_join(where, "command"), "expected the server's command line as a list of texts")
                return None
        elif not isinstance(entry.get("url"), str):
            self.error(_join(where, "url"), "missing required property 'url' (the server's MCP endpoint)")
            return None
        properties: dict[str, JsonValue] = {"transport": "stdio" if kind == "mcp-stdio" else "http"}
        properties |= {k: v for k, v in entry.items() if k not in _TOOL_COMMON and v is not None}
        self.model(tasktypes.CATALOGUE["McpToolCall"].properties, properties, where, f"on a {entry['type']} tool")
        if agent_id is None:
            return None
        task_id = agent.mcp_tool_task_id(agent_id, index)
        self.task_paths.setdefault(task_id, where)
        line, column = self._where(where, False)
        return TaskSpec(
            id=task_id, type="McpToolCall", type_name="McpToolCall", properties=properties,
            line=line or 0, column=column or 0,
        )  # fmt: skip

    def flow_tool(
        self, agent_id: str | None, index: int, entry: Mapping[str, JsonValue], where: str
    ) -> TaskSpec | None:
        """The Subflow task a KestraFlow tool runs (Chorus needs the flow named: no implicit mode)."""
        namespace, flow_id = entry.get("namespace"), entry.get("flowId")
        for key, value in (("namespace", namespace), ("flowId", flow_id)):
            if not isinstance(value, str) or not value:
                self.error(_join(where, key), f"missing required property '{key}' on a KestraFlow tool")
        inputs = entry.get("inputs")
        if inputs is not None and not isinstance(inputs, dict):
            self.error(_join(where, "inputs"), f"expected a mapping of input values, got {_kind(inputs)}")
        if agent_id is None or not isinstance(namespace, str) or not isinstance(flow_id, str):
            return None
        task_id = agent.flow_tool_task_id(agent_id, index)
        self.task_paths.setdefault(task_id, where)
        self.subflows.append((where, namespace, flow_id))
        properties: dict[str, JsonValue] = {
            "namespace": namespace, "flowId": flow_id, "inputs": inputs if isinstance(inputs, dict) else {},
            "wait": True, "transmitFailed": True,
        }  # fmt: skip
        for key in ("revision", "labels", "inheritLabels"):
            if entry.get(key) is not None:
                properties[key] = entry[key]
        line, column = self._where(where, False)
        return TaskSpec(
            id=task_id, type="Subflow", type_name="io.kestra.plugin.core.flow.Subflow", properties=properties,
            description=entry.get("description") if isinstance(entry.get("description"), str) else None,
            line=line or 0, column=column or 0,
        )  # fmt: skip

    def dag(self, value: JsonValue, path: str) -> tuple[TaskSpec, ...]:
        if not isinstance(value, list):
            self.error(path, f"expected a list of {{task, dependsOn}}, got {_kind(value)}")
            return ()
        children: list[tuple[str, TaskSpec]] = []
        for i, entry in enumerate(value):
            where = f"{path}[{i}]"
            if not isinstance(entry, dict) or "task" not in entry:
                self.error(where, "expected a Dag entry: a mapping with 'task' and optional 'dependsOn'")
                continue
            self.unknown_keys(entry, ("task", "dependsOn"), where, "in a Dag entry")
            depends_on = entry.get("dependsOn") or []
            if not isinstance(depends_on, list) or not all(isinstance(d, str) for d in depends_on):
                self.error(_join(where, "dependsOn"), "expected a list of task ids")
                depends_on = []
            task = self.task(entry["task"], _join(where, "task"))
            if task is not None:
                children.append((where, task.model_copy(update={"depends_on": tuple(str(d) for d in depends_on)})))
        ids = {task.id for _, task in children}
        for where, task in children:
            for missing in (d for d in task.depends_on if d not in ids):
                self.error(
                    _join(where, "dependsOn"), f"task '{task.id}' depends on '{missing}', which is not in this Dag"
                )
        cycle = _find_cycle({task.id: list(task.depends_on) for _, task in children})
        if cycle:
            first = next(where for where, task in children if task.id == cycle[0])
            self.error(_join(first, "dependsOn"), f"the Dag has a dependency cycle: {' -> '.join(cycle)}")
        if not value:
            self.error(path, "must contain at least one task")
        return tuple(task for _, task in children)

    # -- triggers ------------------------------------------------------------------------------

    def triggers(self, value: JsonValue) -> tuple[TriggerSpec, ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            self.error("triggers", f"expected a list of triggers, got {_kind(value)}")
            return ()
        triggers: list[TriggerSpec] = []
        seen: dict[str, str] = {}
        for i, raw in enumerate(value):
            where = f"triggers[{i}]"
            if not isinstance(raw, dict):
                self.error(where, f"expected a trigger (a mapping with id and type), got {_kind(raw)}")
                continue
            trigger_id = self.identifier(raw, "id", where, TASK_ID, 256, "letters, digits, '_' and '-'")
            if trigger_id is not None and trigger_id in seen:
                self.error(
                    _join(where, "id"), f"duplicate trigger id '{trigger_id}' (first used at {seen[trigger_id]})"
                )
            type_name = raw.get("type")
            try:
                trigger_type = tasktypes.resolve_trigger(str(type_name))
            except KeyError:
                message = (
                    "missing required property 'type'" if type_name is None else f"unknown trigger type '{type_name}'"
                )
                suggestion = tasktypes.suggest_trigger(str(type_name)) if type_name is not None else None
                self.error(_join(where, "type"), message, suggestion=suggestion)
                continue
            merged = self.with_defaults(str(type_name), raw, where)
            props: dict[str, JsonValue] = {
                k: v for k, v in merged.items() if k not in ("id", "type", "disabled") and v is not None
            }
            if self.model(trigger_type.properties, props, where, f"on a {trigger_type.name} trigger") is not None:
                props = self.kestra2_trigger(trigger_type.name, props, where)
            for at, message, hint in condition_problems(props.get("conditions"), _join(where, "conditions")):
                self.error(at, message, at_key=True, suggestion=hint)
            for path, message in regex_problems(props, where):  # REGEX condition filters, refused here
                self.error(path, message)
            disabled = self.flag(merged, "disabled", where, default=False)
            if trigger_id is None:
                continue
            seen.setdefault(trigger_id, where)
            pos = self.positions.get(where)
            triggers.append(TriggerSpec(
                id=trigger_id, type=trigger_type.name, type_name=str(type_name), properties=props, disabled=disabled,
                line=pos.line if pos else 0, column=pos.column if pos else 0,
            ))  # fmt: skip
        return tuple(triggers)

    def kestra2_trigger(self, kind: str, props: dict[str, JsonValue], where: str) -> dict[str, JsonValue]:
        """A Flow trigger's 2.x `dependsOn`/`window`, checked and compiled onto the 1.x `preconditions`."""
        if kind != "Flow":
            return props
        problems = kestra2.flow_trigger_problems(props)
        for key, message in problems:
            self.error(_join(where, key), message)
        if problems:
            return props
        if props.get("dependsOn") is None:
            if props.get("when") is not None and props.get("states") is None:
                # A Kestra 2 trigger: its default states are the terminal ones and PAUSED.
                return {**props, "states": list(kestra2.DEFAULT_DEPENDS_ON_STATES)}
            return props
        preconditions = kestra2.preconditions_of(props)
        compiled = {**props, "preconditions": preconditions}
        if props.get("states") is None:
            # Each entry filters on its own states; the trigger-wide filter lets every one of them through.
            flows = preconditions["flows"]
            assert isinstance(flows, list)
            states = {str(s) for f in flows if isinstance(f, dict) for s in f.get("states") or []}  # type: ignore[union-attr]
            compiled["states"] = list(sorted(states))
        return compiled

    def checks(self, value: JsonValue) -> tuple[kestra2.CheckSpec, ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            self.error("checks", f"expected a list of checks, got {_kind(value)}")
            return ()
        checks = (self.model(kestra2.CheckSpec, raw, f"checks[{i}]", "on a check") for i, raw in enumerate(value))
        return tuple(c for c in checks if c is not None)

    # -- cross-field rules ---------------------------------------------------------------------

    def check_subflows(self, flow_id: str | None, namespace: str | None) -> None:
        for path, sub_namespace, sub_flow_id in self.subflows:
            if (sub_namespace, sub_flow_id) == (namespace, flow_id):
                self.error(path, f"the Subflow task calls its own flow {namespace}.{flow_id} (recursive call)")

    def check_expressions(self, data: Mapping[str, JsonValue]) -> None:
        """Parse every template Kestra renders (task properties, `runIf`/`when`, trigger `when` and inputs, flow
        outputs, checks) and report syntax errors and unknown names at the expression's own line and column."""
        places: list[tuple[str, JsonValue]] = [(path, props) for path, props in self.task_properties]
        for path in self.task_paths.values():
            if "," not in path:  # a path, not a description of a generated step
                places += [(_join(path, key), value_at(data, _join(path, key))) for key in ("runIf", "when")]
        for section in ("triggers", "outputs", "checks"):
            entries = data.get(section)
            for i, entry in enumerate(entries if isinstance(entries, list) else []):
                if isinstance(entry, dict):
                    places += [
                        (f"{section}[{i}].{key}", entry.get(key)) for key in ("when", "condition", "value", "inputs")
                    ]
        for path, value in places:
            for where, text in strings_at(value, path):
                for problem in expression_problems(text):
                    start_line, start_column = self._where(where, False)
                    line, column = yaml_position(self.source, start_line, start_column, problem)
                    found = self.warnings if problem.syntax else self.errors
                    found.append(FlowErrorDetail(where, problem.message, line, column))

    def check_references(self, inputs: Iterable[Input]) -> None:
        """Refuse ``{{ inputs.a-b }}``-style references: a dash is read as a minus sign."""
        dashed_inputs = [i.id for i in inputs if "-" in i.id]
        dashed_tasks = [t for t in self.task_paths if "-" in t]
        patterns = [
            (re.compile(r"\{\{\s*inputs\." + re.escape(i) + r"\s*\}\}"), f"inputs['{i}']", i) for i in dashed_inputs
        ]
        patterns += [
            (re.compile(r"\{\{\s*outputs\." + re.escape(t) + r"\.[^}]+\}\}"), f"outputs['{t}']", t)
            for t in dashed_tasks
        ]
        for path, props in self.task_properties:
            for text in _strings(props):
                for pattern, bracketed, name in patterns:
                    if pattern.search(text):
                        self.error(path, f"'{name}' contains a dash, which reads as a minus sign: use {bracketed}")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _a(word: str) -> str:
    return "an" if word[:1] in "AEIOU" else "a"


def _first(items: list[str]) -> str | None:
    return items[0] if items else None


def _strings(value: JsonValue) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _find_cycle(graph: Mapping[str, list[str]]) -> list[str] | None:
    """Return one dependency cycle (``[a, b, a]``) in the graph, or None.

    Iterative, so a long dependency chain in a hostile document cannot exhaust the call stack.
    """
    done: set[str] = set()
    for start in graph:
        if start in done:
            continue
        path, on_path = [start], {start}
        pending = [iter(graph[start])]
        while pending:
            dep = next(pending[-1], None)
            if dep is None:
                on_path.discard(path[-1])
                done.add(path.pop())
                pending.pop()
            elif dep in on_path:
                return [*path[path.index(dep) :], dep]
            elif dep in graph and dep not in done:
                path.append(dep)
                on_path.add(dep)
                pending.append(iter(graph[dep]))
    return None
