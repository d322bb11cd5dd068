"""Reading a flow's tasks: types and properties, common fields, branches, Dag entries and AIAgent tools."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import JsonValue

from orchestrator.core import agent, child_policy, tasktypes
from orchestrator.core.durations import is_expression, parse_duration
from orchestrator.core.errors import FlowErrorDetail
from orchestrator.core.flow import RetrySpec, TaskSpec
from orchestrator.core.parse_inputs import InputOutputReader
from orchestrator.core.parse_reader import TASK_ID, article, find_cycle, join_path, kind_of, show

_COMMON_TASK = (
    "id", "type", "version", "description", "retry", "timeout", "disabled", "workerGroup", "logLevel",
    "allowFailure", "allowWarning", "logToFile", "runIf", "when", "taskCache", "compensate", "assets",
)  # fmt: skip
#: Kestra 2's `Task.assets` (io.kestra.core.models.assets.AssetsDeclaration): lineage metadata, read but not recorded.
_ASSETS_KEYS = ("enableAuto", "inputs", "outputs")
#: Every task's own properties, whatever its type (the console's editor completes them: core.plugin_docs).
COMMON_TASK_PROPERTIES = _COMMON_TASK
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


class TaskReader(InputOutputReader):
    """Reads task lists recursively, registering each task's path, properties and subflow calls."""

    def task_list(self, value: JsonValue, path: str, *, required: bool = False) -> tuple[TaskSpec, ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            self.error(path, f"expected a list of tasks, got {kind_of(value)}")
            return ()
        if required and not value:
            self.error(path, "must contain at least one task")
        tasks = (self.task(raw, f"{path}[{i}]") for i, raw in enumerate(value))
        return tuple(t for t in tasks if t is not None)

    def task(self, raw: JsonValue, path: str) -> TaskSpec | None:
        if not isinstance(raw, dict):
            self.error(path, f"expected a task (a mapping with id and type), got {kind_of(raw)}")
            return None
        task_id = self.identifier(raw, "id", path, TASK_ID, 256, "letters, digits, '_' and '-'")
        if task_id is not None:
            if task_id in self.task_paths:
                self.error(
                    join_path(path, "id"), f"duplicate task id '{task_id}' (first used at {self.task_paths[task_id]})"
                )
            self.task_paths.setdefault(task_id, path)
        type_name = raw.get("type")
        if not isinstance(type_name, str):
            self.error(
                join_path(path, "type"), "missing required property 'type'" if type_name is None else "expected text"
            )
            return None
        try:
            task_type = tasktypes.resolve(type_name)
        except KeyError:
            reason = tasktypes.unsupported(type_name)
            if reason is not None:
                self.error(join_path(path, "type"), f"task type '{type_name}' is not supported by Chorus: {reason}")
                return None
            suggestion = tasktypes.suggest(type_name)
            self.error(join_path(path, "type"), f"unknown task type '{type_name}'", suggestion=suggestion)
            return None
        merged = self.with_defaults(type_name, raw, path)
        declared = {f.alias or n for n, f in task_type.properties.model_fields.items()}
        what = f"on {article(task_type.name)} {task_type.name} task"
        self.unknown_keys(merged, sorted(declared | {*_COMMON_TASK, *task_type.branch_fields}), path, what)
        # A type may declare a common name as its own property (JiraCreate's description): it is both.
        props: dict[str, JsonValue] = {k: v for k, v in merged.items() if k in declared and v is not None}
        self.model(task_type.properties, props, path, what)
        self.task_properties.append((path, props))
        if child_policy.PROPERTY in props:
            self.child_failure_policy(task_type.name, props, path)
        if task_type.name == "Subflow":
            self.subflows.append((path, props.get("namespace"), props.get("flowId")))
        if task_type.name == "Pause" and isinstance(props.get("onResume"), list):
            self.declarations(props["onResume"], join_path(path, "onResume"))
        if task_type.name == "Approval" and isinstance(props.get("inputs"), list):
            self.declarations(props["inputs"], join_path(path, "inputs"))
        branches = self.branches(task_type, merged, path)
        tools = self.agent_tools(task_id, props.get("tools"), path) if task_type.name == "AIAgent" else ()
        compensate = self.compensate(merged.get("compensate"), join_path(path, "compensate"))
        if task_id is None:
            return None
        if task_type.name == "ForEachItem":
            branches = {"tasks": self.for_each_item_children(task_id, props, path)}
        if task_type.name == "WorkingDirectory":
            self.working_directory_children(branches.get("tasks", ()), path)
        return TaskSpec(
            id=task_id, type=task_type.name, type_name=type_name, properties=props, branches=branches, tools=tools,
            line=self.position_of(path, False)[0] or 0, column=self.position_of(path, False)[1] or 0,
            compensate=compensate, **self.common(merged, path),
        )  # fmt: skip

    def child_failure_policy(self, type_name: str, props: Mapping[str, JsonValue], path: str) -> None:
        """`childFailurePolicy` beside another form of it is refused; on a sequential ForEach it does nothing."""
        where = join_path(path, child_policy.PROPERTY)
        others = [key for key in ("onChildFailure", "failFast") if key in props]
        if others:
            self.error(where, f"childFailurePolicy and {others[0]} both say what a failed child does: keep one")
        elif type_name == "ForEach" and str(props.get("concurrencyLimit", 1)).strip() == "1":
            line, column = self.position_of(where, True)
            message = (
                "childFailurePolicy has no effect with concurrencyLimit 1 (the default): the iterations run one "
                "after the other and the first failure ends the loop; set concurrencyLimit to 0 or more than 1"
            )
            self.warnings.append(FlowErrorDetail(where, message, line, column))

    def compensate(self, value: JsonValue, path: str) -> tuple[TaskSpec, ...]:
        """A task's `compensate` (a Chorus extension): the tasks that undo it, read like any task list.

        A compensation has no compensation of its own: undoing an undo would make the Saga's unwinding
        recursive, and no order of it would be the reverse of anything.
        """
        if value is None:
            return ()
        tasks = self.task_list(value, path, required=True)
        for index, task in enumerate(tasks):
            for inner in task.iter_tasks():
                if inner.compensate:
                    # The inner task's own path is not kept here: its compensation's path is the closest we have.
                    where = join_path(f"{path}[{index}]", "compensate") if inner is task else f"{path}[{index}]"
                    self.error(where, f"task '{inner.id}' is a compensation: it cannot have a 'compensate' of its own")
        return tasks

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
        line, column = self.position_of(path, False)
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
                    join_path(path, "id"),
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

    def common(self, data: Mapping[str, JsonValue], path: str) -> dict[str, Any]:
        fields: dict[str, Any] = {"description": self.text(data, "description", path)}
        for key, attr in _COMMON_FLAGS:
            fields[attr] = self.flag(data, key, path, default=False)
        if data.get("retry") is not None:
            fields["retry"] = self.model(RetrySpec, data["retry"], join_path(path, "retry"), "in a retry policy")
        timeout = data.get("timeout")
        if timeout is not None:
            try:
                if not isinstance(timeout, str) or is_expression(timeout):
                    raise ValueError("expected a literal ISO-8601 duration such as PT5M")
                fields["timeout"] = parse_duration(timeout)
            except ValueError as e:
                self.error(join_path(path, "timeout"), str(e))
        run_if = data.get("when", data.get("runIf"))  # Kestra 2 renamed runIf to when
        if data.get("when") is not None and data.get("runIf") is not None:
            self.error(join_path(path, "when"), "'when' is Kestra 2's name for 'runIf': give only one of them")
        if run_if is not None:
            fields["run_if"] = str(run_if).lower() if isinstance(run_if, bool) else str(run_if)
        level = data.get("logLevel")
        if level is not None and level not in _LOG_LEVELS:
            self.error(join_path(path, "logLevel"), f"expected one of {', '.join(_LOG_LEVELS)}, got {show(level)}")
        fields["log_level"] = level if level in _LOG_LEVELS else None
        group = data.get("workerGroup")
        if group is not None:
            if isinstance(group, dict) and isinstance(group.get("key"), str) and set(group) <= {"key", "fallback"}:
                fields["worker_group"] = group["key"]
            else:
                self.error(join_path(path, "workerGroup"), "expected a mapping with a 'key' (and optional 'fallback')")
        fields["task_cache"] = self.mapping(data, "taskCache", path)
        self.assets(data, path)
        return fields

    def assets(self, data: Mapping[str, JsonValue], path: str) -> None:
        """Check Kestra 2's `assets` declaration. Chorus keeps no asset catalogue (Kestra's lineage store), so a
        valid declaration changes nothing at run time; a malformed one is refused as Kestra's Jackson would."""
        declared = self.mapping(data, "assets", path)
        if declared is None:
            return
        where = join_path(path, "assets")
        for key, value in declared.items():
            if key not in _ASSETS_KEYS:
                expected = ", ".join(_ASSETS_KEYS)
                self.error(join_path(where, key), f"unknown property '{key}' in assets (expected {expected})")
            elif key != "enableAuto" and value is not None and not isinstance(value, list) and not is_expression(value):
                self.error(join_path(where, key), f"expected a list of assets, got {kind_of(value)}")

    def branches(
        self, task_type: tasktypes.TaskType, data: Mapping[str, JsonValue], path: str
    ) -> dict[str, tuple[TaskSpec, ...]]:
        branches: dict[str, tuple[TaskSpec, ...]] = {}
        for field in (k for k in data if k in task_type.branch_fields):
            where = join_path(path, field)
            value = data[field]
            if task_type.name == "Switch" and field == "cases":
                if value is not None and not isinstance(value, dict):
                    self.error(where, f"expected a mapping of case values to task lists, got {kind_of(value)}")
                for case, tasks in (value or {}).items() if isinstance(value, dict) else ():
                    branches[f"cases.{case}"] = self.task_list(tasks, join_path(where, case), required=True)
                    if tasks is None:
                        self.error(join_path(where, case), "must contain at least one task")
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
                    join_path(path, field),
                    f"missing required property '{field}' on {article(task_type.name)} {task_type.name} task",
                )
        if task_type.name == "Switch" and not data.get("cases") and not data.get("defaults"):
            self.error(join_path(path, "cases"), "a Switch needs tasks in 'cases' or 'defaults'")
        return branches

    def agent_tools(self, agent_id: str | None, value: JsonValue, path: str) -> tuple[TaskSpec, ...]:
        """An AIAgent's `tools`: known types with their fields; task and flow tools become task specs."""
        if not isinstance(value, list):
            return ()  # an expression: checked when rendered
        specs: list[TaskSpec] = []
        for index, entry in enumerate(value):
            where = f"{join_path(path, 'tools')}[{index}]"
            if not isinstance(entry, dict):
                self.error(where, f"expected a tool (a mapping with a type), got {kind_of(entry)}")
                continue
            kind = agent.tool_kind(entry.get("type"))
            if kind is None:
                known = ", ".join(k for k in agent.TOOL_KINDS if "." in k)
                self.error(join_path(where, "type"), f"unknown tool type {show(entry.get('type'))}; known: {known}")
                continue
            self.unknown_keys(entry, _TOOL_KEYS[kind], where, f"on a {entry['type']} tool")
            if kind == "task":
                if entry.get("tasks") is None:
                    self.error(join_path(where, "tasks"), "missing required property 'tasks' on a KestraTask tool")
                tasks = self.task_list(entry.get("tasks"), join_path(where, "tasks"), required=True)
                for i, task in enumerate(tasks):
                    if tasktypes.CATALOGUE[task.type].flowable or task.type in ("Subflow", "AIAgent"):
                        self.error(
                            f"{join_path(where, 'tasks')}[{i}]",
                            f"a KestraTask tool runs runnable tasks, not {task.type}",
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
                self.error(join_path(where, "command"), "expected the server's command line as a list of texts")
                return None
        elif not isinstance(entry.get("url"), str):
            self.error(join_path(where, "url"), "missing required property 'url' (the server's MCP endpoint)")
            return None
        properties: dict[str, JsonValue] = {"transport": "stdio" if kind == "mcp-stdio" else "http"}
        properties |= {k: v for k, v in entry.items() if k not in _TOOL_COMMON and v is not None}
        self.model(tasktypes.CATALOGUE["McpToolCall"].properties, properties, where, f"on a {entry['type']} tool")
        if agent_id is None:
            return None
        task_id = agent.mcp_tool_task_id(agent_id, index)
        self.task_paths.setdefault(task_id, where)
        line, column = self.position_of(where, False)
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
                self.error(join_path(where, key), f"missing required property '{key}' on a KestraFlow tool")
        inputs = entry.get("inputs")
        if inputs is not None and not isinstance(inputs, dict):
            self.error(join_path(where, "inputs"), f"expected a mapping of input values, got {kind_of(inputs)}")
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
        line, column = self.position_of(where, False)
        return TaskSpec(
            id=task_id, type="Subflow", type_name="io.kestra.plugin.core.flow.Subflow", properties=properties,
            description=entry.get("description") if isinstance(entry.get("description"), str) else None,
            line=line or 0, column=column or 0,
        )  # fmt: skip

    def dag(self, value: JsonValue, path: str) -> tuple[TaskSpec, ...]:
        if not isinstance(value, list):
            self.error(path, f"expected a list of {{task, dependsOn}}, got {kind_of(value)}")
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
                self.error(join_path(where, "dependsOn"), "expected a list of task ids")
                depends_on = []
            task = self.task(entry["task"], join_path(where, "task"))
            if task is not None:
                children.append((where, task.model_copy(update={"depends_on": tuple(str(d) for d in depends_on)})))
        ids = {task.id for _, task in children}
        for where, task in children:
            for missing in (d for d in task.depends_on if d not in ids):
                self.error(
                    join_path(where, "dependsOn"), f"task '{task.id}' depends on '{missing}', which is not in this Dag"
                )
        cycle = find_cycle({task.id: list(task.depends_on) for _, task in children})
        if cycle:
            first = next(where for where, task in children if task.id == cycle[0])
            self.error(join_path(first, "dependsOn"), f"the Dag has a dependency cycle: {' -> '.join(cycle)}")
        if not value:
            self.error(path, "must contain at least one task")
        return tuple(task for _, task in children)
