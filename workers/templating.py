"""templating.TemplatedTask (a task whose YAML spec is rendered at run time) and metric.Publish."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from orchestrator.core import tasktypes
from orchestrator.core.durations import parse_duration
from orchestrator.core.errors import FlowInvalid, TaskFailed
from orchestrator.core.parse import load_document, parse_flow
from workers.context import TaskContext

_TEMPLATED = "TemplatedTask"


def run_templated_task(ctx: TaskContext) -> dict[str, Any] | None:
    """Render `spec`, read it as one task, and run that task in this task run's place (Kestra's TemplatedTask)."""
    from workers.registry import handler_for  # the registry imports this module

    spec = ctx.render(ctx.properties.get("spec"))
    try:
        raw = load_document(str(spec)) if isinstance(spec, str) else spec
    except FlowInvalid as e:
        raise TaskFailed(f"spec: the rendered task is not valid YAML: {e.message}", retryable=False) from e
    if not isinstance(raw, dict):
        raise TaskFailed("spec: the rendered task must be a mapping with a `type`", retryable=False)
    raw = {"id": ctx.claimed.task.id, **raw}
    try:
        kind = tasktypes.resolve(str(raw.get("type")))
    except KeyError:
        raise TaskFailed(f"spec: unknown task type '{raw.get('type')}'", retryable=False) from None
    if kind.name == _TEMPLATED:
        raise TaskFailed(
            "The templated task cannot be of type 'io.kestra.plugin.core.templating.TemplatedTask'", retryable=False
        )
    if kind.flowable:
        raise TaskFailed("The templated task must be a runnable task", retryable=False)
    document = {"id": ctx.claimed.flow.id, "namespace": ctx.claimed.flow.namespace, "tasks": [raw]}
    try:
        task = parse_flow(json.dumps(document)).tasks[0]
    except FlowInvalid as e:
        raise TaskFailed(f"spec: {e.message}", retryable=False) from e
    inner = dataclasses.replace(ctx, claimed=dataclasses.replace(ctx.claimed, task=task), logs=ctx.logs)
    return handler_for(task.type)(inner)


def _metric(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict) or "name" not in raw or "value" not in raw:
        raise TaskFailed(f"metrics: each metric needs a type, a name and a value, got {raw!r}", retryable=False)
    kind = str(raw.get("type", "counter")).lower()
    value = raw["value"]  # `metrics` is rendered whole before
    if kind == "counter":
        try:
            number: Any = float(value)
        except (TypeError, ValueError) as e:
            raise TaskFailed(f"metrics: counter {raw['name']!r} needs a number, got {value!r}", retryable=False) from e
        number = int(number) if number.is_integer() else number
    elif kind == "timer":
        try:
            number = parse_duration(str(value)).total_seconds()
        except ValueError as e:
            raise TaskFailed(f"metrics: timer {raw['name']!r} needs a duration, got {value!r}", retryable=False) from e
    else:
        raise TaskFailed(f"metrics: unknown metric type {raw.get('type')!r} (counter or timer)", retryable=False)
    tags = {str(k): str(v) for k, v in (raw.get("tags") or {}).items()}
    return {"name": str(raw["name"]), "type": kind, "value": number, "tags": tags}


def run_metric_publish(ctx: TaskContext) -> dict[str, Any] | None:
    metrics = ctx.render(ctx.properties.get("metrics"))
    if not isinstance(metrics, list):
        raise TaskFailed("metrics: expected a list of metrics", retryable=False)
    published = [_metric(m) for m in metrics]
    for metric in published:
        ctx.log("INFO", f"metric {metric['type']} {metric['name']} = {metric['value']} {metric['tags'] or ''}".rstrip())
    return {"metrics": published}


HANDLERS = {_TEMPLATED: run_templated_task, "MetricPublish": run_metric_publish}
