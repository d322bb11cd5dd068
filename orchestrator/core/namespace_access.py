"""May namespace A use namespace B for action X: the one decision every task, trigger and function asks.

The model is Kestra EE's `allowedNamespaces`: a namespace says which other namespaces may use it. A flow
always may use its own namespace; any other use, a parent or a child namespace included, needs a grant in
the configuration (`CHORUS_NAMESPACE_ACCESS`, JSON, read at start):

    {"team.b": ["team.a"],                                  # team.a may do anything with team.b
     "shared.*": [{"namespace": "*", "uses": ["kv.read"]}]}  # every namespace may read shared's KV

A key names the namespace being used, a list entry the namespace using it. Both are patterns: `*` is any
namespace, `a.b.*` is `a.b` and every namespace under it, anything else one namespace. Uses are named
like the API's permissions, so a grant reads like a role binding given to a namespace.

`flow_references` lists what a flow names statically, so validate warns about a forbidden reference with its
YAML line (the flow still deploys, as in Kestra); the workers and the Flow trigger matcher ask `allows` when
the action happens, which is where a crossing is refused (most namespaces are rendered at run time anyway).
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from orchestrator.core.errors import FlowErrorDetail, NamespaceAccessDenied
from orchestrator.core.flow import Flow

__all__ = ["NamespaceAccess", "NamespaceAccessDenied", "Use", "flow_references", "matches", "refused_references"]


class Use(enum.StrEnum):
    """What a flow does with another namespace (named as the API permission that guards the same act)."""

    EXECUTION_RUN = "execution.run"  #: start its flows (Subflow, ForEachItem, an agent's flow tool), get outputs
    EXECUTION_READ = "execution.read"  #: see its executions: Flow triggers, read() and inputFiles of their files
    EXECUTION_RESUME = "execution.resume"  #: resume (approve) its paused executions
    LOG_READ = "log.read"  #: its executions' logs (the Fetch task)
    KV_READ = "kv.read"  #: kv() and the KV Get task
    KV_WRITE = "kv.write"  #: the KV Set and Delete tasks
    FLOW_WRITE = "flow.write"  #: enable or disable its flows' triggers (the Toggle task)
    FILE_READ = "file.read"  #: its namespace files (DownloadFiles)
    FILE_WRITE = "file.write"  #: upload or delete its namespace files (UploadFiles, DeleteFiles)


def matches(pattern: str, namespace: str) -> bool:
    """Whether a grant pattern covers `namespace`: `*`, `a.b.*` (a.b and below it) or one exact name."""
    if pattern == "*":
        return True
    if pattern.endswith(".*"):
        base = pattern[:-2]
        return namespace == base or namespace.startswith(base + ".")
    return namespace == pattern


@dataclass(frozen=True)
class _Grant:
    target: str  #: pattern of the namespace being used
    user: str  #: pattern of the namespace using it
    uses: frozenset[Use]


@dataclass(frozen=True)
class NamespaceAccess:
    """The grants of one deployment; the default (no grants) allows each namespace only itself."""

    grants: tuple[_Grant, ...] = ()

    @classmethod
    def from_config(cls, raw: Mapping[str, Any]) -> NamespaceAccess:
        """Read `CHORUS_NAMESPACE_ACCESS`'s shape; ValueError names the first unusable entry."""
        grants = []
        for target, entries in raw.items():
            if not isinstance(target, str) or not target or not isinstance(entries, list):
                raise ValueError(f"{target!r}: expected a namespace mapped to a list of namespaces allowed to use it")
            for entry in entries:
                grants.append(_grant(target, entry))
        return cls(tuple(grants))

    def allows(self, namespace: str, target: str, use: Use) -> bool:
        """Whether a flow of `namespace` may do `use` on `target`."""
        if namespace == target:
            return True
        return any(use in g.uses and matches(g.target, target) and matches(g.user, namespace) for g in self.grants)

    def require(self, namespace: str, target: str, use: Use, what: str) -> None:
        """Raise NamespaceAccessDenied unless `allows`; `what` names the task or function for the message."""
        if not self.allows(namespace, target, use):
            raise NamespaceAccessDenied(namespace, target, use, what)


def _grant(target: str, entry: Any) -> _Grant:
    if isinstance(entry, str) and entry:
        return _Grant(target, entry, frozenset(Use))
    if isinstance(entry, dict) and isinstance(entry.get("namespace"), str) and entry["namespace"]:
        uses = entry.get("uses", [str(u) for u in Use])
        known = {str(u) for u in Use}
        if not isinstance(uses, list) or not all(isinstance(u, str) and u in known for u in uses):
            raise ValueError(f"{target!r}: uses {uses!r} must be a list of {sorted(known)}")
        return _Grant(target, entry["namespace"], frozenset(Use(u) for u in uses))
    raise ValueError(f"{target!r}: entry {entry!r} must be a namespace or {{'namespace': ..., 'uses': [...]}}")


# -- what a flow names statically -----------------------------------------------------------------------
@dataclass(frozen=True)
class Reference:
    """A namespace a flow names in its YAML, with the use and where it is written."""

    path: str
    target: str
    use: Use
    line: int
    column: int


#: Task types whose `namespace` property names a namespace they use, and for what.
_TASK_USES = {
    "Subflow": Use.EXECUTION_RUN,
    "ForEachItem": Use.EXECUTION_RUN,  # its _items child carries the same namespace; the parent is what was written
    "KVGet": Use.KV_READ,
    "KVSet": Use.KV_WRITE,
    "KVDelete": Use.KV_WRITE,
    "KVPut": Use.KV_WRITE,
    "Toggle": Use.FLOW_WRITE,
    "Fetch": Use.LOG_READ,
    "Resume": Use.EXECUTION_RESUME,
    "DownloadFiles": Use.FILE_READ,
    "UploadFiles": Use.FILE_WRITE,
    "DeleteFiles": Use.FILE_WRITE,
}


def _literal(value: Any) -> str | None:
    """A namespace written as plain text (an expression is only known at run time, and checked then)."""
    return value if isinstance(value, str) and value and "{" not in value else None


def flow_references(flow: Flow) -> Iterator[Reference]:
    """Every namespace `flow` names literally in a task or a Flow trigger's conditions."""
    for task in flow.iter_tasks():
        use = _TASK_USES.get(task.type)
        target = _literal(task.properties.get("namespace")) if use else None
        if use and target:
            yield Reference(f"tasks.{task.id}.namespace", target, use, task.line, task.column)
    for trigger in flow.triggers:
        if trigger.type != "Flow":
            continue
        for target in _trigger_namespaces(trigger.properties):
            yield Reference(f"triggers.{trigger.id}", target, Use.EXECUTION_READ, trigger.line, trigger.column)


def _trigger_namespaces(props: Mapping[str, Any]) -> Iterator[str]:
    conditions = props.get("conditions")
    for condition in conditions if isinstance(conditions, list) else []:
        if not isinstance(condition, dict):
            continue
        kind = str(condition.get("type", "")).rsplit(".", 1)[-1].removesuffix("Condition")
        exact = kind == "ExecutionFlow" or (
            kind == "ExecutionNamespace"
            and str(condition.get("comparison", "EQUALS")).upper() == "EQUALS"
            and not condition.get("prefix")
        )
        target = _literal(condition.get("namespace")) if exact else None
        if target:
            yield target
        if kind == "Multiple":
            nested = condition.get("conditions")
            yield from _trigger_namespaces({"conditions": list(nested.values()) if isinstance(nested, dict) else []})
    preconditions = props.get("preconditions")
    flows = preconditions.get("flows") if isinstance(preconditions, dict) else None
    for entry in flows if isinstance(flows, list) else []:
        target = _literal(entry.get("namespace")) if isinstance(entry, dict) else None
        if target:
            yield target


def refused_references(flow: Flow, access: NamespaceAccess) -> list[FlowErrorDetail]:
    """The references of `flow` its namespace may not make, as flow errors with their YAML line."""
    return [
        FlowErrorDetail(
            ref.path,
            f"namespace '{flow.namespace}' may not use namespace '{ref.target}' ({ref.use}); an administrator "
            "grants it in CHORUS_NAMESPACE_ACCESS",
            ref.line or None,
            ref.column or None,
        )
        for ref in flow_references(flow)
        if not access.allows(flow.namespace, ref.target, ref.use)
    ]
