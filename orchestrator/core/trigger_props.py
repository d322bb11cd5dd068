"""Typed property models of the core trigger types (Schedule, ScheduleOnDates, Webhook, Flow, Http).

As on tasks, unknown properties are refused and the models only validate.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, JsonValue, PlainValidator
from pydantic.alias_generators import to_camel

from orchestrator.core.prop_types import (
    Bool,
    Duration,
    HttpMethod,
    Int,
    Json,
    ListOrText,
    ListValue,
    LogLevel,
    MapOrList,
    MapValue,
    Text,
    TextList,
    accepting,
    one_of,
    show_value,
)


class TriggerProperties(BaseModel):
    """Base of trigger property models: Kestra's AbstractTrigger properties, across its 1.x and 2.x versions."""

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=False)

    description: Text | None = None
    conditions: ListValue | None = None
    when: Text | None = None  #: Kestra 2: an expression replacing `conditions`
    log_level: LogLevel | None = None
    min_log_level: LogLevel | None = None
    stop_after: TextList | None = None
    log_to_file: Bool | None = None
    worker_group: MapValue | None = None
    fail_on_trigger_error: Bool | None = None
    allow_concurrent: Bool | None = None
    labels: MapOrList | None = None
    version: Text | None = None


_CRON_NICKNAMES = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")


def _is_cron(value: object) -> bool:
    # A loose syntax check only; the scheduler parses cron expressions fully.
    if not isinstance(value, str):
        return False
    text = value.strip()
    return text in _CRON_NICKNAMES or len(text.split()) in (5, 6)


def _cron(value: object) -> object:
    if _is_cron(value):
        return value
    raise ValueError(f"expected a cron expression (5 or 6 fields, or a nickname like @daily), got {show_value(value)}")


class ScheduleProps(TriggerProperties):
    cron: Annotated[JsonValue, PlainValidator(_cron)]
    interval: Duration | None = None
    schedule_conditions: ListValue | None = None  # deprecated in Kestra 0.15, still read
    timezone: Text | None = None
    with_seconds: Bool | None = None
    inputs: MapValue | None = None
    backfill: MapValue | None = None
    late_maximum_delay: Duration | None = None
    recover_missed_schedules: (
        Annotated[JsonValue, accepting("ALL, LAST or NONE", one_of("ALL", "LAST", "NONE"))] | None
    ) = None


class ScheduleOnDatesProps(TriggerProperties):
    dates: ListOrText
    interval: Duration | None = None
    recover_missed_schedules: (
        Annotated[JsonValue, accepting("ALL, LAST or NONE", one_of("ALL", "LAST", "NONE"))] | None
    ) = None
    timezone: Text | None = None
    inputs: MapValue | None = None


class WebhookProps(TriggerProperties):
    key: Text
    inputs: MapValue | None = None
    wait: Bool | None = None
    return_outputs: Bool | None = None
    response_content_type: Text | None = None
    response_code: Int | None = None
    fetch_type: Annotated[JsonValue, accepting("FETCH or STORE", one_of("FETCH", "STORE"))] | None = None


class FlowTriggerProps(TriggerProperties):
    inputs: MapValue | None = None
    preconditions: MapValue | None = None
    states: TextList | None = None


class HttpTriggerProps(TriggerProperties):
    uri: Text
    method: HttpMethod | None = None
    interval: Duration | None = None
    response_condition: Text | None = None
    body: Json = None
    headers: MapValue | None = None
    options: MapValue | None = None
    form_data: MapValue | None = None
    content_type: Text | None = None
    ssl_options: MapValue | None = None
    encrypt_body: Bool | None = None
    auth: MapValue | None = None
