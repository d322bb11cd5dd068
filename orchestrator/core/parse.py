"""YAML text -> Flow, every validation error carrying its field path and 1-based line/column.

:mod:`orchestrator.core.yamldoc` loads the text safely into plain values and field positions;
``_FlowReader`` walks those values, checks them against the flow model, the task catalogue and
Kestra's cross-field rules, and collects every problem before raising one FlowInvalid. Its sections
are read by the readers it extends: ``parse_reader`` (positions and errors), ``parse_inputs``,
``parse_tasks`` and ``parse_triggers``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from pydantic import JsonValue

from orchestrator.core.condition_props import condition_problems
from orchestrator.core.errors import FlowErrorDetail, FlowInvalid
from orchestrator.core.expression_check import expression_problems, strings_at, value_at, yaml_position
from orchestrator.core.flow import Concurrency, Flow, Input, Label, RetrySpec
from orchestrator.core.parse_reader import join_path, kind_of, show
from orchestrator.core.parse_tasks import TaskReader
from orchestrator.core.parse_triggers import TriggerReader
from orchestrator.core.yamldoc import MAX_DOCUMENT_BYTES, load_yaml

__all__ = ["MAX_DOCUMENT_BYTES", "load_document", "parse_flow", "parse_flow_with_warnings", "split_documents"]

# Kestra's patterns (AbstractFlow), applied to the whole value.
FLOW_ID = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9._-]*")
#: Dot-separated names, none empty and none `_files`: each name is a storage directory (`a.b` is `/a/b`), so `a..b`
#: or `a.` would share `a.b`'s or `a`'s files, and `a._files` would live inside `a`'s namespace files.
NAMESPACE = re.compile(r"[a-z0-9][a-z0-9_-]*(?:\.(?!_files(?:\.|$))[a-z0-9_-]+)*")


def load_document(text: str) -> dict[str, Any]:
    """Parse YAML text safely into a plain dict; raise FlowInvalid on any YAML or limit problem."""
    value, _ = load_yaml(text)
    if not isinstance(value, dict):
        raise FlowInvalid([FlowErrorDetail("", f"a flow must be a YAML mapping, not {kind_of(value)}", 1, 1)])
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
        raise FlowInvalid([FlowErrorDetail("", f"a flow must be a YAML mapping, not {kind_of(value)}", 1, 1)])
    reader = _FlowReader(positions, text.splitlines())
    flow = reader.read(value)
    if reader.errors or flow is None:
        raise FlowInvalid(sorted(reader.errors, key=lambda e: (e.line or 0, e.column or 0)))
    return flow, sorted(reader.warnings, key=lambda e: (e.line or 0, e.column or 0))


# `deleted` appears in sources Kestra exports and is ignored; `taskDefaults` is pluginDefaults' old name.
_TOP_LEVEL = (
    "id", "namespace", "revision", "description", "labels", "inputs", "variables", "tasks", "errors", "finally",
    "afterExecution", "triggers", "pluginDefaults", "taskDefaults", "concurrency", "outputs", "retry", "sla",
    "disabled", "deleted", "checks", "listeners", "indexedFields",
)  # fmt: skip
_LISTENER_KEYS = ("description", "conditions", "tasks")
_SECTIONS = (("tasks", "tasks"), ("errors", "errors"), ("finally", "finally_"), ("afterExecution", "after_execution"))


class _FlowReader(TaskReader, TriggerReader):
    """Reads a whole flow document, then applies the rules that span its sections."""

    def read(self, data: dict[str, JsonValue]) -> Flow | None:
        self.unknown_keys(data, _TOP_LEVEL, "", "at the top level of a flow")
        flow_id = self.identifier(data, "id", "", FLOW_ID, 100, "letters, digits, '.', '_' and '-'")
        namespace = self.identifier(
            data, "namespace", "", NAMESPACE, 150, "lowercase names (letters, digits, '_', '-') joined by single dots"
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
            self.error("revision", f"expected a positive integer, got {show(revision)}")
        fields["revision"] = revision if isinstance(revision, int) and not isinstance(revision, bool) else None
        fields["plugin_defaults"] = self.defaults(data)
        for key, attr in _SECTIONS:
            fields[attr] = self.task_list(data.get(key), key, required=key == "tasks")
        if data.get("tasks") is None:
            self.error("tasks", "missing required property 'tasks': a flow needs at least one task")
        fields["triggers"] = self.triggers(data.get("triggers"))
        fields["checks"] = self.checks(data.get("checks"))
        self.listeners(data.get("listeners"))
        self.indexed_fields(data.get("indexedFields"))
        fields["outputs"] = self.outputs(data.get("outputs"))
        if data.get("concurrency") is not None:
            fields["concurrency"] = self.model(Concurrency, data["concurrency"], "concurrency", "in concurrency")
        if data.get("retry") is not None:
            fields["retry"] = self.model(RetrySpec, data["retry"], "retry", "in a retry policy")
        if data.get("sla") is not None and not isinstance(data["sla"], list):
            self.error("sla", f"expected a list, got {kind_of(data['sla'])}")
        self.check_subflows(flow_id, namespace)
        self.check_references(fields["inputs"])
        self.check_expressions(data)
        if self.errors or flow_id is None or namespace is None:
            return None
        return Flow(id=flow_id, namespace=namespace, **fields)

    def labels(self, value: JsonValue, path: str) -> tuple[Label, ...]:
        pairs: list[tuple[str, str, JsonValue]] = []
        if isinstance(value, dict):
            pairs = [(join_path(path, k), k, v) for k, v in value.items()]
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
                self.error(where, f"expected a label value as text, got {kind_of(raw)}")
        return tuple(labels)

    def listeners(self, value: JsonValue) -> None:
        """Check Kestra's deprecated `listeners` (a list of {description, conditions, tasks}) and warn: Kestra
        disables them by default since 0.12 and runs none of their tasks; neither does Chorus."""
        if value is None:
            return
        if not isinstance(value, list):
            self.error("listeners", f"expected a list of listeners, got {kind_of(value)}")
            return
        for i, raw in enumerate(value):
            where = f"listeners[{i}]"
            if not isinstance(raw, dict):
                self.error(where, f"expected a listener (a mapping with tasks), got {kind_of(raw)}")
                continue
            self.unknown_keys(raw, _LISTENER_KEYS, where, "on a listener")
            if raw.get("conditions") is not None and not isinstance(raw["conditions"], list):
                self.error(
                    join_path(where, "conditions"), f"expected a list of conditions, got {kind_of(raw['conditions'])}"
                )
            for at, message, hint in condition_problems(raw.get("conditions"), join_path(where, "conditions")):
                self.error(at, message, at_key=True, suggestion=hint)
            self.task_list(raw.get("tasks"), join_path(where, "tasks"), required=True)
            if raw.get("tasks") is None:
                self.error(join_path(where, "tasks"), "missing required property 'tasks': a listener needs tasks")
        line, column = self.position_of("listeners", True)
        message = (
            "listeners are deprecated and disabled (as in Kestra since 0.12): their tasks never run; "
            "use afterExecution or a Flow trigger instead"
        )
        self.warnings.append(FlowErrorDetail("listeners", message, line, column))

    def indexed_fields(self, value: JsonValue) -> None:
        """Check Kestra 2's `indexedFields` (a list of {id, value}: values Kestra renders when the execution ends
        and indexes for execution search, IndexedFieldsTest). Chorus accepts and checks them; it indexes none."""
        if value is None:
            return
        if not isinstance(value, list):
            self.error("indexedFields", f"expected a list of {{id, value}}, got {kind_of(value)}")
            return
        for i, raw in enumerate(value):
            where = f"indexedFields[{i}]"
            if not isinstance(raw, dict):
                self.error(where, f"expected an indexed field as {{id, value}}, got {kind_of(raw)}")
            elif not isinstance(raw.get("id"), str) or not raw["id"]:
                self.error(join_path(where, "id"), "missing required property 'id': an indexed field needs a name")
            elif "value" not in raw:
                self.error(join_path(where, "value"), f"missing required property 'value' of indexed field {raw['id']}")

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
                places += [(join_path(path, key), value_at(data, join_path(path, key))) for key in ("runIf", "when")]
        for section in ("triggers", "outputs", "checks", "indexedFields"):
            entries = data.get(section)
            for i, entry in enumerate(entries if isinstance(entries, list) else []):
                if isinstance(entry, dict):
                    places += [
                        (f"{section}[{i}].{key}", entry.get(key)) for key in ("when", "condition", "value", "inputs")
                    ]
        for path, value in places:
            for where, text in strings_at(value, path):
                for problem in expression_problems(text):
                    start_line, start_column = self.position_of(where, False)
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
            for text in strings_in(props):
                for pattern, bracketed, name in patterns:
                    if pattern.search(text):
                        self.error(path, f"'{name}' contains a dash, which reads as a minus sign: use {bracketed}")


def strings_in(value: JsonValue) -> Iterator[str]:
    """Every string a YAML/JSON value holds, however deeply nested in maps and lists."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings_in(item)
