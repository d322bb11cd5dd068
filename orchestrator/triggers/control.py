"""Trigger control for the API: list triggers, enable/disable, unlock, and start/pause/resume/cancel a backfill.

Each operation is one transaction that first waits for the scheduler's lock and synchronises the
trigger rows with the deployed flows, so it never races a tick; every change is audited on the
flow's chain with the person who asked as actor. The scheduler fires backfill slots at its ticks.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from orchestrator import store
from orchestrator.core.errors import Conflict, InputInvalid, NotFound
from orchestrator.engine import Engine
from orchestrator.store import locks as store_locks
from orchestrator.store import triggers as store_triggers
from orchestrator.store.database import Session
from orchestrator.store.locks import SCHEDULER_LOCK_KEY
from orchestrator.store.tables import TriggerRow
from orchestrator.triggers import schedules as schedule
from orchestrator.triggers.scheduler import sync_triggers

TriggerKey = tuple[str, str, str]  #: (namespace, flow id, trigger id)


@contextmanager
def _locked(engine: Engine) -> Iterator[Session]:
    with engine.transaction() as session:
        store_locks.wait_for_advisory_lock(session, SCHEDULER_LOCK_KEY)
        sync_triggers(engine, session, store.utcnow())
        yield session


def _row(engine: Engine, session: Session, key: TriggerKey) -> TriggerRow:
    row = store_triggers.get_trigger(session, engine.settings.tenant, *key, lock=True)
    if row is None:
        raise NotFound("trigger", ".".join(key))
    return row


def _audit(session: Session, row: TriggerRow, action: str, actor: str, payload: dict[str, Any]) -> None:
    chain = store.flow_chain_key(row.tenant, row.namespace, row.flow_id)
    store.append_audit(session, chain, actor=actor, action=action, subject=row.trigger_id, payload=payload)


def list_triggers(engine: Engine, namespace: str | None = None) -> Sequence[TriggerRow]:
    """Schedule triggers with their last and next fire (rows brought up to date with the flows first)."""
    with _locked(engine) as session:
        return store_triggers.triggers_of(session, engine.settings.tenant, namespace)


def set_enabled(engine: Engine, key: TriggerKey, enabled: bool | None, *, actor: str) -> TriggerRow:
    """Enable, disable or flip (None) a trigger; re-enabling resumes at the next slot (missed slots do not pile up)."""
    now = store.utcnow()
    with _locked(engine) as session:
        row = _row(engine, session, key)
        enabled = not row.enabled if enabled is None else enabled
        if row.enabled != enabled:
            row.enabled, row.updated_at = enabled, now
            if enabled:
                row.next_fire_at = _next_slot(engine, session, row, now)
            _audit(session, row, "trigger.enabled" if enabled else "trigger.disabled", actor, {})
        session.flush()
        return row


def unlock(engine: Engine, key: TriggerKey, *, actor: str) -> TriggerRow:
    """Reschedule a stuck trigger at its next slot from now and forget its `stopAfter` memory."""
    now = store.utcnow()
    with _locked(engine) as session:
        row = _row(engine, session, key)
        row.next_fire_at, row.last_execution_id, row.updated_at = _next_slot(engine, session, row, now), None, now
        _audit(session, row, "trigger.unlocked", actor, {"next_fire_at": store.iso(row.next_fire_at or now)})
        session.flush()
        return row


def start_backfill(
    engine: Engine,
    key: TriggerKey,
    start: datetime,
    end: datetime,
    *,
    inputs: dict[str, Any] | None = None,
    labels: list[dict[str, str]] | None = None,
    actor: str,
) -> TriggerRow:
    """Backfill every slot of [start, end]: the scheduler creates one execution per slot, labelled as a backfill."""
    start, end = _aware(start), _aware(end)
    if any(
        set(label) != {"key", "value"} or not all(isinstance(v, str) for v in label.values()) for label in labels or []
    ):
        raise InputInvalid("labels", "each backfill label is a {key, value} pair of strings")
    if start.year < 1970 or end.year > 9998:
        raise InputInvalid("start", "a backfill must lie between the years 1970 and 9998")
    if end < start:
        raise InputInvalid("end", f"the backfill ends ({end.isoformat()}) before it starts ({start.isoformat()})")
    with _locked(engine) as session:
        row = _row(engine, session, key)
        if "backfill" in row.state:
            raise Conflict(f"trigger {'.'.join(key)} already has a backfill in progress")
        first = _cron(engine, session, row).after(start - schedule.ONE_MICROSECOND)
        backfill = {
            "start": start.isoformat(), "end": end.isoformat(), "next": schedule.utc(first).isoformat(),
            "inputs": inputs or {}, "labels": labels or [], "paused": False,
        }  # fmt: skip
        row.state, row.updated_at = {**row.state, "backfill": backfill}, store.utcnow()
        _audit(session, row, "trigger.backfill_started", actor, {"start": backfill["start"], "end": backfill["end"]})
        session.flush()
        return row


def pause_backfill(engine: Engine, key: TriggerKey, paused: bool, *, actor: str) -> TriggerRow:
    """Pause or resume a backfill in progress."""
    with _locked(engine) as session:
        row = _row(engine, session, key)
        if "backfill" not in row.state:
            raise Conflict(f"trigger {'.'.join(key)} has no backfill in progress")
        row.state = {**row.state, "backfill": {**row.state["backfill"], "paused": paused}}
        _audit(session, row, "trigger.backfill_paused" if paused else "trigger.backfill_resumed", actor, {})
        session.flush()
        return row


def cancel_backfill(engine: Engine, key: TriggerKey, *, actor: str) -> TriggerRow:
    """Stop a backfill; executions it already created keep running."""
    with _locked(engine) as session:
        row = _row(engine, session, key)
        if "backfill" not in row.state:
            raise Conflict(f"trigger {'.'.join(key)} has no backfill in progress")
        row.state = {k: v for k, v in row.state.items() if k != "backfill"}
        _audit(session, row, "trigger.backfill_cancelled", actor, {})
        session.flush()
        return row


def _cron(engine: Engine, session: Session, row: TriggerRow) -> schedule.Cron | schedule.Dates:
    flow_row = store.latest_flow(session, row.tenant, row.namespace, row.flow_id)
    flow = engine.flow_of(flow_row) if flow_row is not None else None
    trigger = next((t for t in flow.triggers if t.id == row.trigger_id), None) if flow else None
    if trigger is None:
        raise NotFound("trigger", f"{row.namespace}.{row.flow_id}.{row.trigger_id}")
    return schedule.parse_schedule(trigger.type, trigger.properties)


def _next_slot(engine: Engine, session: Session, row: TriggerRow, now: datetime) -> datetime:
    return schedule.utc(_cron(engine, session, row).after(now))


def _aware(moment: datetime) -> datetime:
    """A date without a time zone is UTC, as Kestra reads one."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
