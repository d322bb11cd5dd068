"""Compensation test flows over the webhook fake (test_compensation): steps that each send one HTTP request to
`{{ inputs.base }}<path>`, with the steps that undo them, built here rather than written out per flow.

`{ns}` stays a placeholder for `deploy_flow`. The YAML is dumped from plain values, so a step reads as what it
is (`http("book", "/hotel", undo=[...])`) and every flow has the same `base` input.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml

__all__ = ["http", "saga_flow"]

Step = dict[str, Any]


def http(task_id: str, path: str, method: str = "POST", *, undo: Sequence[Step] = (), **more: Any) -> Step:
    """A Request task sending `method` to `{{ inputs.base }}<path>`; `undo` its `compensate` steps."""
    step: Step = {"id": task_id, "type": "io.kestra.plugin.core.http.Request", "uri": "{{ inputs.base }}" + path}
    step.update(method=method, **more)
    if undo:
        step["compensate"] = list(undo)
    return step


def saga_flow(
    flow_id: str, tasks: Sequence[Step], *, errors: Sequence[Step] = (), finally_: Sequence[Step] = ()
) -> str:
    """The flow's YAML: a `base` input (the URL prefix of the test's fake), `tasks`, then `errors` and `finally`."""
    flow: dict[str, Any] = {
        "id": flow_id,
        "namespace": "{ns}",
        "inputs": [{"id": "base", "type": "STRING"}],
        "tasks": list(tasks),
    }
    if errors:
        flow["errors"] = list(errors)
    if finally_:
        flow["finally"] = list(finally_)
    return str(yaml.safe_dump(flow, sort_keys=False, width=1000))
