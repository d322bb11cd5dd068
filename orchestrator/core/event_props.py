"""Property models of the Chorus event extension: the Publish task, the Event trigger and realtime queue triggers.

These are Chorus extensions (`io.chorus.*`), not Kestra plugins: Kestra has no in-cluster event bus. The
realtime triggers keep Kestra's property names where Kestra has the same trigger (`io.kestra.plugin.amqp.
RealtimeTrigger`: `url`, `queue`, `consumerTag`), and Kestra's Redis stream vocabulary (`key`, `group`,
`consumer`) for the stream consumer Kestra only offers as a polling trigger.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import JsonValue, PlainValidator

from orchestrator.core.prop_types import Int, Json, MapValue, Properties, Text
from orchestrator.core.trigger_props import TriggerProperties

__all__ = ["AmqpTriggerProps", "EventTriggerProps", "PublishProps", "RedisStreamTriggerProps", "valid_event_name"]


def valid_event_name(value: object) -> bool:
    """Dotted words (`ticket.classified`): an event name is matched literally, so it may not be an expression."""
    if not isinstance(value, str) or not value or len(value) > 256 or "{" in value:
        return False
    return all(part and all(c.isalnum() or c in "_-" for c in part) for part in value.split("."))


def _event_name(value: object) -> JsonValue:
    if not valid_event_name(value):
        raise ValueError(f"expected an event name of dotted words (e.g. ticket.classified), got {value!r}")
    return value  # type: ignore[return-value]


EventName = Annotated[JsonValue, PlainValidator(_event_name)]


class PublishProps(Properties):
    """`io.chorus.event.Publish`: emit `event` with a JSON `payload` when the task run commits."""

    event: EventName
    payload: Json = None


class EventTriggerProps(TriggerProperties):
    """`io.chorus.trigger.Event`: one execution per published `event` whose `when` holds over it."""

    event: EventName
    inputs: MapValue | None = None


class RedisStreamTriggerProps(TriggerProperties):
    """`io.chorus.trigger.RedisStream`: one execution per entry of a Redis stream, read by a consumer group."""

    url: Text
    key: Text
    group: Text
    consumer: Text | None = None
    start_id: Text | None = None  #: where a group created by the trigger starts: `$` (default, new entries) or `0`
    inputs: MapValue | None = None
    batch_size: Int | None = None


class AmqpTriggerProps(TriggerProperties):
    """Kestra's `io.kestra.plugin.amqp.RealtimeTrigger`: one execution per message of an AMQP queue."""

    url: Text
    queue: Text
    consumer_tag: Text | None = None
    auto_ack: JsonValue = None  # Kestra's; Chorus always acknowledges after the execution commits
    serde_type: Text | None = None
    inputs: MapValue | None = None
