"""The Subflow task (and Kestra's legacy Flow task): render the child's inputs and labels, then start it."""

from __future__ import annotations

from typing import Any

from orchestrator.core.errors import TaskFailed
from orchestrator.core.namespace_access import Use
from orchestrator.engine import CORRELATION_LABEL, Engine, Verdict
from workers.context import TaskContext


def _labels(raw: Any) -> list[dict[str, str]]:
    if isinstance(raw, dict):
        return [{"key": str(k), "value": str(v)} for k, v in raw.items()]
    if isinstance(raw, list):
        return [{"key": str(i["key"]), "value": str(i["value"])} for i in raw if isinstance(i, dict) and "key" in i]
    return []


def _flat(labels: dict[str, Any]) -> dict[str, Any]:
    """The `labels` variable (system labels nested under `system`, as Kestra shows them) as label keys."""
    flat: dict[str, Any] = {}
    for key, value in labels.items():
        if key == "system" and isinstance(value, dict):
            flat.update({f"system.{k}": v for k, v in value.items()})
        else:
            flat[key] = value
    return flat


def inherited_labels(ctx: TaskContext) -> list[dict[str, str]]:
    """The parent's labels a child inherits (`inheritLabels`); the engine drops those the child's flow sets."""
    if not ctx.properties.get("inheritLabels"):
        return []
    return [{"key": k, "value": str(v)} for k, v in _flat(ctx.claimed.variables.get("labels", {})).items()]


def labels_for(ctx: TaskContext) -> list[dict[str, str]]:
    """A child execution's own labels: the parent's correlation id (unless it inherits them all), then `labels`."""
    props = ctx.properties
    labels: list[dict[str, str]] = []
    parent_labels = _flat(ctx.claimed.variables.get("labels", {}))
    if not props.get("inheritLabels") and CORRELATION_LABEL in parent_labels:
        labels.append({"key": CORRELATION_LABEL, "value": str(parent_labels[CORRELATION_LABEL])})
    extra = _labels(ctx.render_stored(props.get("labels"), "labels"))
    # As the Labels task and the API: a flow may not forge a child's system labels (its correlation id, who
    # started it, read-only); the parent's own system labels above are passed on by the engine's rules.
    reserved = [label["key"] for label in extra if label["key"].startswith("system.")]
    if reserved:
        raise TaskFailed(f"labels {reserved} are reserved for the system", retryable=False)
    return labels + extra


def start_subflow(ctx: TaskContext, engine: Engine) -> Verdict:
    props = ctx.properties
    revision = props.get("revision")
    namespace = str(ctx.render(props["namespace"]))
    flow_id = str(ctx.render(props["flowId"]))
    # Checked before anything of the child is known: its outputs come back into this execution.
    ctx.guard.require(namespace, Use.EXECUTION_RUN, f"Subflow {namespace}.{flow_id}")
    return engine.start_subflow(
        ctx.claimed,
        namespace=namespace,
        flow_id=flow_id,
        inputs=ctx.render_stored(props.get("inputs") or {}, "subflow inputs"),
        labels=labels_for(ctx),
        inherited=inherited_labels(ctx),
        wait=props.get("wait", True) is not False,
        revision=int(revision) if revision is not None else None,
    )
