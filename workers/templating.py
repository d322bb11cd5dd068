"""templating.TemplatedTask (a task whose YAML spec is rendered at run time) and metric.Publish."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Callable
from typing import Any

from orchestrator.core import tasktypes
from orchestrator.core.durations import parse_duration
from orchestrator.core.errors import FlowInvalid, TaskFailed
from orchestrator.core.expressions import PLACEHOLDER, has_expression, render_parts
from orchestrator.core.parse import load_document, parse_flow
from workers.context import TaskContext

_TEMPLATED = "TemplatedTask"


def _read_spec(ctx: TaskContext, spec: Any) -> tuple[Any, tuple[str, ...]]:
    """The task the spec describes, and the data its placeholders name.

    Kestra renders the spec, parses it, and the task renders its properties again: an input holding
    `{{ secret('X') }}` or a line break followed by `type: ...` would be run as the flow author's code. Here what
    the spec's expressions print is data (as in render(), `orchestrator/core/authored.py`): it enters the YAML as
    an opaque token, so it cannot change the task's structure, and comes back as its text, or, when it holds
    template syntax, as a placeholder that the task's own render prints unevaluated.
    """
    if not isinstance(spec, str):
        return ctx.render(spec), ()
    nonce = uuid.uuid4().hex
    tokens: dict[str, str] = {}
    text: list[str] = []
    for index, (chunk, code) in enumerate(render_parts(spec, ctx.claimed.variables, functions=ctx.functions)):
        if code:
            text.append(chunk)
        else:
            token = f"chorusdata{nonce}n{index}"
            tokens[token] = chunk
            text.append(token)
    try:
        raw = load_document("".join(text))
    except FlowInvalid as e:
        raise TaskFailed(f"spec: the rendered task is not valid YAML: {e.message}", retryable=False) from e
    data: list[str] = []

    def inert(chunk: str) -> str:
        if not has_expression(chunk):
            return chunk
        data.append(chunk)
        return f"{{{{ {PLACEHOLDER}[{len(data) - 1}] }}}}"

    def restore(value: Any) -> Any:
        if isinstance(value, str):
            if value in tokens:  # a whole value printed by one expression: a number, a list, a map as Kestra reads it
                return restore_data(tokens[value])
            for token, chunk in tokens.items():
                value = value.replace(token, inert(chunk))
            return value
        if isinstance(value, dict):
            return {restore(k): restore(v) for k, v in value.items()}
        if isinstance(value, list):
            return [restore(v) for v in value]
        return value

    def restore_data(chunk: str) -> Any:
        try:
            parsed = load_document(chunk) if chunk.strip() else chunk
        except FlowInvalid:
            parsed = chunk
        return _inert_strings(parsed if isinstance(parsed, dict | list) else chunk, inert)

    return restore(raw), tuple(data)


def _inert_strings(value: Any, inert: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return inert(value)
    if isinstance(value, dict):
        return {inert(str(k)): _inert_strings(v, inert) for k, v in value.items()}
    if isinstance(value, list):
        return [_inert_strings(v, inert) for v in value]
    return value


def run_templated_task(ctx: TaskContext) -> dict[str, Any] | None:
    """Render `spec`, read it as one task, and run that task in this task run's place (Kestra's TemplatedTask)."""
    from workers.registry import handler_for  # the registry imports this module

    raw, data = _read_spec(ctx, ctx.properties.get("spec"))
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
    variables = {**ctx.claimed.variables, PLACEHOLDER: data}
    inner = dataclasses.replace(
        ctx, claimed=dataclasses.replace(ctx.claimed, task=task, variables=variables), logs=ctx.logs
    )
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
