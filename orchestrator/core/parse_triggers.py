"""Reading a flow's `triggers` (Kestra 2's Flow trigger form compiled onto 1.x preconditions) and `checks`."""

from __future__ import annotations

from pydantic import JsonValue

from orchestrator.core import kestra2, tasktypes
from orchestrator.core.condition_props import condition_problems
from orchestrator.core.flow import TriggerSpec
from orchestrator.core.flow_conditions import regex_problems
from orchestrator.core.parse_reader import TASK_ID, DocumentReader, join_path, kind_of


class TriggerReader(DocumentReader):
    """Reads triggers and checks, with plugin defaults applied to triggers as to tasks."""

    def triggers(self, value: JsonValue) -> tuple[TriggerSpec, ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            self.error("triggers", f"expected a list of triggers, got {kind_of(value)}")
            return ()
        triggers: list[TriggerSpec] = []
        seen: dict[str, str] = {}
        for i, raw in enumerate(value):
            where = f"triggers[{i}]"
            if not isinstance(raw, dict):
                self.error(where, f"expected a trigger (a mapping with id and type), got {kind_of(raw)}")
                continue
            trigger_id = self.identifier(raw, "id", where, TASK_ID, 256, "letters, digits, '_' and '-'")
            if trigger_id is not None and trigger_id in seen:
                self.error(
                    join_path(where, "id"), f"duplicate trigger id '{trigger_id}' (first used at {seen[trigger_id]})"
                )
            type_name = raw.get("type")
            try:
                trigger_type = tasktypes.resolve_trigger(str(type_name))
            except KeyError:
                message = (
                    "missing required property 'type'" if type_name is None else f"unknown trigger type '{type_name}'"
                )
                suggestion = tasktypes.suggest_trigger(str(type_name)) if type_name is not None else None
                self.error(join_path(where, "type"), message, suggestion=suggestion)
                continue
            merged = self.with_defaults(str(type_name), raw, where)
            props: dict[str, JsonValue] = {
                k: v for k, v in merged.items() if k not in ("id", "type", "disabled") and v is not None
            }
            if self.model(trigger_type.properties, props, where, f"on a {trigger_type.name} trigger") is not None:
                props = self.kestra2_trigger(trigger_type.name, props, where)
            for at, message, hint in condition_problems(props.get("conditions"), join_path(where, "conditions")):
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
            self.error(join_path(where, key), message)
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
            self.error("checks", f"expected a list of checks, got {kind_of(value)}")
            return ()
        checks = (self.model(kestra2.CheckSpec, raw, f"checks[{i}]", "on a check") for i, raw in enumerate(value))
        return tuple(c for c in checks if c is not None)
