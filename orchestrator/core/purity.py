"""Which tasks are pure: an inline type whose expressions call only functions that need no process of their own.

A pure task's attempt has no effect outside the transaction that records it and reads nothing a given
process holds (secrets, KV, files, log lines of other transactions), so any process may run it inside
that transaction (engine/local_drive.py) and a rollback undoes it entirely. The rest goes to a worker.
"""

from __future__ import annotations

from jinja2 import TemplateSyntaxError, nodes

from orchestrator.core.errors import ExpressionError
from orchestrator.core.expressions import has_expression, parse_source
from orchestrator.core.flow import Flow, TaskSpec
from orchestrator.core.parse import strings_in
from orchestrator.core.pebble_syntax import translate

#: Inline types whose bodies only render and log (Publish is inline too, but its delivery reaches out).
PURE_TYPES = frozenset({"Log", "Return", "Echo", "Fail", "Assert", "OutputValues"})

#: Flowables whose decider only renders its own properties (no pause, timer, child execution or files).
PURE_DECIDERS = frozenset(
    {"Sequential", "Parallel", "If", "Switch", "ForEach", "EachSequential", "EachParallel", "Dag", "AllowFailure"}
)

# An allow-list, so a function added later is sent to a worker until someone says it is pure here.
# Left out on purpose: secret, kv, read, errorLogs (the caller's I/O), and Kestra's file and HTTP functions.
_PURE_FUNCTIONS = frozenset({
    "currentEachOutput", "fromJson", "fromYaml", "json", "jsonDecode", "loopOutputs", "max", "min", "now",
    "iterationOutput", "iterationOutputs", "randomInt", "range", "uuid", "yaml", "dayOfMonth", "dayOfWeek",
    "hourOfDay", "isDayWeekInMonth", "isLastWorkingDay", "isWeekend", "monthOfYear",
    "outputFromIteration", "parentOutput",
})  # fmt: skip
# `jq` is left out: it runs in a sandboxed subprocess, work a controller's transaction must not wait on.
_PURE_FILTERS = frozenset({
    "abbreviate", "abs", "base64decode", "base64encode", "capitalize", "chunk", "className", "date", "dateAdd",
    "default", "distinct", "endsWith", "escapeChar", "first", "flatten", "indent", "join", "json", "jsonEncode",
    "keys", "last", "length", "lower", "md5", "merge", "nindent", "number", "numberFormat", "replace", "reverse",
    "rsort", "sha1", "sha256", "sha512", "slice", "slugify", "sort", "split", "startsWith", "string",
    "substringAfter", "substringAfterLast", "substringBefore", "substringBeforeLast", "timestamp", "timestampMicro",
    "timestampMilli", "timestampNano", "title", "toJson", "trim", "uniq", "upper", "urldecode", "urlencode",
    "values", "yaml",
})  # fmt: skip


def template_is_pure(template: str) -> bool:
    """Whether a template calls only allow-listed functions and filters (one that does not parse is not)."""
    if not has_expression(template):
        return True
    try:
        tree = parse_source(translate(template).source)
    except (ExpressionError, TemplateSyntaxError):
        return False  # it fails the same way wherever it runs, but a worker says so with its usual message
    local = {n.name for n in tree.find_all(nodes.Macro)}
    for node in tree.find_all((nodes.Filter, nodes.Call)):
        if isinstance(node, nodes.Filter) and node.name not in _PURE_FILTERS:
            return False
        if isinstance(node, nodes.Call) and isinstance(node.node, nodes.Name):
            name = node.node.name
            if not name.startswith("__pebble_") and name not in _PURE_FUNCTIONS and name not in local:
                return False
    return True


def is_pure(flow: Flow, task: TaskSpec) -> bool:
    """Whether any process may run (or decide) `task` inside the transaction that records it.

    The flow's variables count too: a template may evaluate them (`render(vars.x)`). A `timeout` or a
    `workerGroup` asks for a worker's process; so does any task type not listed above.
    """
    if task.type not in PURE_TYPES and task.type not in PURE_DECIDERS:
        return False
    if task.worker_group is not None or task.timeout is not None or task.task_cache is not None:
        return False
    own = [*strings_in(dict(task.properties)), *([task.run_if] if task.run_if else [])]
    return all(template_is_pure(t) for t in own) and all(
        template_is_pure(t) for t in strings_in(dict(flow.variables or {}))
    )
