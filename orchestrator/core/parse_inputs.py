"""Reading a flow's `inputs` (and input declarations elsewhere, as Pause `onResume`) and its `outputs`."""

from __future__ import annotations

from pydantic import JsonValue

from orchestrator.core import inputs as input_decl
from orchestrator.core.flow import FlowOutput, Input, InputType
from orchestrator.core.parse_reader import DocumentReader, find_cycle, join_path, kind_of, show


class InputOutputReader(DocumentReader):
    """Reads input declarations and flow outputs, checking ids, dependencies and types."""

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
        cycle = find_cycle({spec.id: list(spec.depends_on) for _, spec in declared})
        if cycle:
            message = f"inputs depend on each other in a cycle: {' -> '.join(cycle)}"
            self.error(f"{seen[cycle[0]]}.dependsOn", message)
        return tuple(spec for _, spec in declared)

    def declarations(self, value: JsonValue, path: str) -> list[tuple[str, Input]]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.error(path, f"expected a list of inputs, got {kind_of(value)}")
            return []
        declared = []
        for i, raw in enumerate(value):
            where = f"{path}[{i}]"
            if not isinstance(raw, dict):
                self.error(where, f"expected an input declaration (a mapping), got {kind_of(raw)}")
                continue
            pos = self.positions.get(where)
            spec, problems = input_decl.read_declaration(raw, pos.line if pos else 0, pos.column if pos else 0)
            for problem in problems:
                target = join_path(where, problem.key) if problem.key else where
                self.error(target, problem.message, at_key=problem.at_key, suggestion=problem.suggestion)
            if spec is not None:
                declared.append((where, spec))
        return declared

    def outputs(self, value: JsonValue) -> tuple[FlowOutput, ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            self.error("outputs", f"expected a list of outputs, got {kind_of(value)}")
            return ()
        outputs: list[FlowOutput] = []
        for i, raw in enumerate(value):
            where = f"outputs[{i}]"
            if not isinstance(raw, dict):
                self.error(where, f"expected an output (a mapping), got {kind_of(raw)}")
                continue
            self.unknown_keys(
                raw, ("id", "type", "value", "description", "displayName", "required"), where, "on an output"
            )
            output_id = self.identifier(raw, "id", where, input_decl.INPUT_ID, 256, "letters, digits, '.', '_', '-'")
            if output_id is not None and output_id in {o.id for o in outputs}:
                self.error(f"{where}.id", f"duplicate output id '{output_id}'")
            declared = raw.get("type", "STRING")
            if declared not in InputType.__members__:
                self.error(f"{where}.type", f"unknown output type {show(declared)}")
            elif output_id is not None:
                outputs.append(FlowOutput(
                    id=output_id, type=InputType(str(declared)), value=raw.get("value"),
                    description=self.text(raw, "description", where), display_name=self.text(raw, "displayName", where),
                    required=self.flag(raw, "required", where, default=True),
                ))  # fmt: skip
        return tuple(outputs)
