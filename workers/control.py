"""The control pool's tasks: Log, Return, OutputValues, Fail, and the decisions of Sequential, Parallel, If."""

from __future__ import annotations

import json
import time
from typing import Any

from orchestrator.core.decision import TaskRunDecision
from orchestrator.core.durations import format_duration, is_expression, parse_duration
from orchestrator.core.errors import ChorusError, TaskFailed
from orchestrator.core.expressions import is_true
from orchestrator.core.namespace_access import Use
from orchestrator.core.pebble_values import format_value
from workers.context import Decider, Decision, Handler, TaskContext
from workers.storage import store_file
from workers.workdir import run_local_files


def run_log(ctx: TaskContext) -> dict[str, Any] | None:
    level = str(ctx.properties.get("level", "INFO"))
    message = ctx.properties.get("message", "")
    for line in message if isinstance(message, list) else [message]:
        # A list may hold numbers and booleans (YAML `- 42`, `- true`): each is logged as Kestra writes it, "true"
        # not "True" (LogTest#shouldLogNonStringMessageListElementsInsteadOfCrashing).
        ctx.log(level, format_value(ctx.render(line)))
    return None


def run_return(ctx: TaskContext) -> dict[str, Any] | None:
    return {"value": ctx.render(ctx.properties.get("format"))}


def run_output_values(ctx: TaskContext) -> dict[str, Any] | None:
    return {"values": ctx.render(ctx.properties.get("values", {}))}


def run_fail(ctx: TaskContext) -> dict[str, Any] | None:
    condition = ctx.properties.get("condition")
    if condition is not None and not is_true(ctx.render(condition)):
        return None
    message = ctx.render(ctx.properties.get("errorMessage", "Task failure"))
    raise TaskFailed(str(message), retryable=True)


def decide_sequence(ctx: TaskContext) -> Decision:
    return Decision({"branch": "tasks"})


def decide_if(ctx: TaskContext) -> Decision:
    condition = is_true(ctx.render(ctx.properties.get("condition")))
    # Kestra's If.Output: `evaluationResult`, what `outputs.<if>.evaluationResult` and parentOutput() read
    return Decision(
        {"branch": "then" if condition else "else", "condition": condition}, {"evaluationResult": condition}
    )


def run_echo(ctx: TaskContext) -> dict[str, Any] | None:
    # Kestra's deprecated Echo logs its rendered `format` (it has no outputs, unlike Return).
    ctx.log(str(ctx.properties.get("level", "INFO")), str(ctx.render(ctx.properties.get("format", ""))))
    return None


HANDLERS: dict[str, Handler] = {
    "Log": run_log,
    "Return": run_return,
    "Echo": run_echo,
    "OutputValues": run_output_values,
    "Fail": run_fail,
}

DECIDERS: dict[str, Decider] = {
    "Sequential": decide_sequence,
    "Parallel": decide_sequence,
    "If": decide_if,
}


def _values(raw: Any) -> list[Any]:
    """A loop's values: a list, or a JSON string of one (Kestra accepts both)."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError as e:
            raise TaskFailed(f"values must be a list or a JSON array, got {raw!r}", retryable=False) from e
    if not isinstance(raw, list):
        raise TaskFailed(f"values must be a list or a JSON array, got {raw!r}", retryable=False)
    return raw


def _java(value: Any) -> str:
    """A value as Java's `toString` shows it (Kestra's messages print lists and maps that way)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={_java(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_java(v) for v in value) + "]"
    return str(value)


def each_values(raw: Any, rendered: Any) -> list[Any]:
    """Kestra's `FlowableUtils.resolveEachTasks`: a loop runs once per distinct value, and a null value
    fails it; integers of a YAML list are rendered as text ("1"), as Kestra renders each element."""
    values = _values(rendered)
    if isinstance(raw, list):
        values = [str(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in values]
    distinct: dict[str, Any] = {}
    for value in values:
        distinct.setdefault(json.dumps(value, sort_keys=True), value)
    nulls = sum(1 for value in distinct.values() if value is None)
    if nulls:
        raise TaskFailed(f"Found '{nulls}' null values on Each, with values={_java(values)}", retryable=False)
    return list(distinct.values())


def decide_for_each(ctx: TaskContext) -> Decision:
    raw = ctx.properties.get("values", ctx.properties.get("value"))
    return Decision({"branch": "tasks", "values": each_values(raw, ctx.render(raw))})


def decide_switch(ctx: TaskContext) -> Decision:
    value = ctx.render(ctx.properties.get("value"))
    key = value if isinstance(value, str) else json.dumps(value)
    branch = f"cases.{key}"
    if branch in ctx.claimed.task.branches:
        return Decision({"branch": branch}, {"value": key, "defaults": False})
    if not ctx.claimed.task.branches.get("defaults"):  # absent, or `defaults: null` as in Kestra's tests
        at, flow = ctx.claimed.coordinates, ctx.claimed.flow
        # Kestra's FlowableUtils.resolveState: no branch to run fails the Switch, with this warning.
        ctx.log("WARN", f"No task found on flow '{flow.namespace}.{flow.id}', task '{at.task_id}', execution "
                f"'{at.execution_id}'")  # fmt: skip
        raise TaskFailed(f"Switch: no case matches '{key}' and there are no defaults", retryable=False)
    return Decision({"branch": "defaults"}, {"value": key, "defaults": True})


DECIDERS.update(
    {
        "ForEach": decide_for_each,
        "EachSequential": decide_for_each,
        "EachParallel": decide_for_each,
        "Dag": decide_sequence,
        "AllowFailure": decide_sequence,
        "ForEachItem": decide_sequence,
        "WorkingDirectory": decide_sequence,
        "Switch": decide_switch,
    }
)


_PAUSE_BEHAVIORS = ("RESUME", "WARN", "CANCEL", "FAIL")


def decide_pause(ctx: TaskContext) -> Decision:
    """Pause parks the execution; `delay` resumes it by itself (then `behavior` decides), `timeout` fails it
    when nobody resumes. An `onPause` task runs first: the engine parks the task run once it ended."""
    props = ctx.properties
    now = ctx.claimed.clock.now()  # the sweeper wakes the pause by the database's clock: `due` is by it too
    delay = props.get("delay") or props.get("pauseDuration")
    timeout = ctx.claimed.task.timeout
    choice: TaskRunDecision = {"branch": "tasks", "pause": True}
    if delay:
        choice.update({"due": (now + parse_duration(str(ctx.render(delay)))).isoformat(), "on_due": "resume"})
        behavior = str(ctx.render(props.get("behavior") or "RESUME")).strip().upper()
        if behavior not in _PAUSE_BEHAVIORS:
            raise TaskFailed(
                f"behavior: expected one of {', '.join(_PAUSE_BEHAVIORS)}, got {behavior!r}", retryable=False
            )
        choice["behavior"] = behavior
    elif timeout:
        choice.update({"due": (now + timeout).isoformat(), "on_due": "timeout"})
    description = ctx.claimed.task.description
    if description and is_expression(description):
        # Rendered now, for the approver's card; refused (kept raw) when secret() took part or it does not render.
        try:
            choice["description"] = str(ctx.render_stored(description, "Pause description"))
        except ChorusError as e:
            ctx.log("WARN", f"the Pause description is shown unrendered: {e}")
    if ctx.claimed.task.branches.get("onPause"):
        choice.update({"branch": "onPause", "awaiting": True, "pause": False})
    return Decision(choice)


DECIDERS["Pause"] = decide_pause


def run_sleep(ctx: TaskContext) -> dict[str, Any] | None:
    """A Sleep run by a parent that runs its children itself (WorkingDirectory): it waits in place.

    Everywhere else a Sleep goes through `workers.runtime`, which parks long waits in the database.
    """
    duration = parse_duration(str(ctx.render(ctx.properties.get("duration", "PT0S"))))
    ctx.log("INFO", f"Waiting for {format_duration(duration)}")
    time.sleep(duration.total_seconds())
    return None


HANDLERS["Sleep"] = run_sleep


def _label_list(raw: Any) -> list[dict[str, str]]:
    """Kestra's Labels task takes a map, a list of {key, value}, or a JSON string of either."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError as e:
            raise TaskFailed(f"labels must be a map or a list of key/value, got {raw!r}", retryable=False) from e
    if isinstance(raw, dict):
        pairs = [(str(k), _label_value(v)) for k, v in raw.items()]
    elif isinstance(raw, list) and all(isinstance(i, dict) and "key" in i for i in raw):
        pairs = [(str(i["key"]), _label_value(i.get("value", ""))) for i in raw]
    else:
        raise TaskFailed(f"labels must be a map or a list of key/value, got {raw!r}", retryable=False)
    empty = [f"{k}={v}" for k, v in pairs if not k or not v]
    if empty:
        # Kestra's Label: neither the key nor the value may be empty; the task fails and sets no label.
        raise TaskFailed(f"a label needs a key and a value, got {', '.join(empty)}", retryable=False)
    return [{"key": k, "value": v} for k, v in dict(pairs).items()]  # a repeated key: the last value wins


def _label_value(value: Any) -> str:
    """A label's value as Kestra's Labels task writes it: a map as its JSON, any other value as text."""
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return format_value(value)


def run_labels(ctx: TaskContext) -> dict[str, Any] | None:
    labels = _label_list(ctx.render_stored(ctx.properties.get("labels"), "labels"))
    reserved = [label["key"] for label in labels if label["key"].startswith("system.")]
    if reserved:
        raise TaskFailed(f"labels {reserved} are reserved for the system", retryable=False)
    ctx.engine.set_labels(ctx.claimed.coordinates.execution_id, labels, actor=f"task:{ctx.claimed.task.id}")
    return None


def run_fetch(ctx: TaskContext) -> dict[str, Any] | None:
    execution_id = ctx.render(ctx.properties.get("executionId")) or ctx.claimed.coordinates.execution_id
    if execution_id != ctx.claimed.coordinates.execution_id:
        ctx.guard.execution(str(execution_id), Use.LOG_READ, "Fetch")
    task_ids = ctx.render(ctx.properties.get("tasksId") or [])
    level = str(ctx.render(ctx.properties.get("level", "INFO"))).upper()
    logs = ctx.engine.fetch_logs(str(execution_id), task_ids=task_ids, min_level=level)
    # Kestra writes the lines to internal storage (one per line) and outputs the file's URI and the count;
    # `logs` keeps them readable inline too.
    body = "".join(json.dumps(line, separators=(",", ":"), default=str) + "\n" for line in logs).encode()
    uri = store_file(ctx.engine.settings.data_dir, ctx.claimed, f"{ctx.claimed.task.id}.ion", body)
    return {"size": len(logs), "uri": uri, "logs": logs}


HANDLERS["Labels"] = run_labels
HANDLERS["Fetch"] = run_fetch


def decide_loop(ctx: TaskContext) -> Decision:
    # Kestra's loops count from 1: the first iteration reads `outputs.<loop>.iterationCount` as 1.
    return Decision({"branch": "tasks", "loop": 0}, {"iterationCount": 1})


HANDLERS["LocalFiles"] = run_local_files
DECIDERS["WaitFor"] = decide_loop
DECIDERS["LoopUntil"] = decide_loop


def run_assert(ctx: TaskContext) -> dict[str, Any] | None:
    """Kestra's Assert: every condition must render true; the failures are listed (as ERROR logs too)."""
    failed = [c for c in ctx.properties.get("conditions", []) if not is_true(ctx.render(c))]
    for condition in failed:
        ctx.log("ERROR", f"Assertion `{condition}` failed!")
    if failed:
        message = ctx.properties.get("errorMessage")
        raise TaskFailed(str(ctx.render(message)) if message else f"{len(failed)} assertion(s) failed", retryable=False)
    return None


def run_resume(ctx: TaskContext) -> dict[str, Any] | None:
    """Kestra's Resume: resume a paused execution (by default the parent of this subflow run)."""
    target = ctx.render(ctx.properties.get("executionId")) or ctx.claimed.variables.get("trigger", {}).get(
        "executionId"
    )
    if not target:
        raise TaskFailed("Resume needs an executionId (or to run as a subflow of the paused one)", retryable=False)
    ctx.guard.execution(str(target), Use.EXECUTION_RESUME, "Resume")
    inputs = ctx.render_stored(ctx.properties.get("inputs") or {}, "resume inputs")
    ctx.engine.resume(str(target), inputs, actor=f"task:{ctx.claimed.coordinates.execution_id}/{ctx.claimed.task.id}")
    return None


HANDLERS["Assert"] = run_assert
HANDLERS["Resume"] = run_resume
