"""The Publish task (Chorus extension `io.chorus.event.Publish`): render an event and its JSON payload.

The handler is pure: it only returns what to publish. The engine writes the event to its outbox in the
transaction that records this task run's success, so a crash before that commit publishes nothing, and
Event triggers hear the event only after it (orchestrator.engine.events).
"""

from __future__ import annotations

import json
from typing import Any

from orchestrator.core.errors import TaskFailed
from orchestrator.core.event_props import valid_event_name
from workers.context import Handler, TaskContext

#: A payload is stored in the outbox and copied into every subscriber's `trigger.payload`: large data
#: belongs in internal storage, with its URI in the payload.
MAX_PAYLOAD_BYTES = 256 * 1024


def run_publish(ctx: TaskContext) -> dict[str, Any] | None:
    name = ctx.properties.get("event")
    if not valid_event_name(name):
        raise TaskFailed(f"event: expected dotted words (e.g. ticket.classified), got {name!r}", retryable=False)
    payload = ctx.render(ctx.properties.get("payload"))
    try:
        size = len(json.dumps(payload, separators=(",", ":")).encode())
    except (TypeError, ValueError) as e:
        raise TaskFailed(f"payload: not JSON ({e})", retryable=False) from e
    if size > MAX_PAYLOAD_BYTES:
        raise TaskFailed(f"payload: {size} bytes is over the {MAX_PAYLOAD_BYTES}-byte limit", retryable=False)
    ctx.log("INFO", f"publishing {name} ({size} bytes of payload)")
    return {"event": name, "payload": payload}


HANDLERS: dict[str, Handler] = {"Publish": run_publish}
