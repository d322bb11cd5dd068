"""The scheduler: fires due Schedule triggers, one replica at a time, each slot exactly once.

Each tick takes a transaction-scoped advisory lock without waiting, so among replicas only one
ticks at a time and a standby takes over at its next tick when the leader dies. A slot's execution
and the trigger's next fire time are committed in the same transaction, so a crash either loses
both (the slot fires at the next tick) or keeps both (it never fires again). Executions are
dispatched after commit; one lost between commit and dispatch is re-dispatched by the sweeper.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from orchestrator import store
from orchestrator.core import kestra2
from orchestrator.core.errors import ChorusError
from orchestrator.core.flow import Flow, TriggerSpec
from orchestrator.core.inputs import coerce_inputs
from orchestrator.core.schedule_conditions import schedule_conditions_hold
from orchestrator.engine import Engine
from orchestrator.observability.metrics import record_schedule_fire
from orchestrator.store import locks as store_locks
from orchestrator.store import triggers as store_triggers
from orchestrator.store.database import Session
from orchestrator.store.locks import SCHEDULER_LOCK_KEY
from orchestrator.store.tables import FlowRevisionRow, TriggerRow
from orchestrator.triggers import schedules as schedule

logger = logging.getLogger(__name__)

SCHEDULE_TYPES = frozenset({"Schedule", "ScheduleOnDates"})
#: The label every backfill execution carries (Kestra marks them in its UI the same way).
BACKFILL_LABEL = "system.backfill"

Clock = Callable[[], datetime]


def trigger_actor(namespace: str, flow_id: str, trigger_id: str) -> str:
    """The audit actor of everything a trigger does."""
    return f"trigger:{namespace}.{flow_id}.{trigger_id}"


class Scheduler:
    """Evaluates the `triggers` table against a clock (a dependency, so tests can drive time).

    Without one, the database's: the next leader may run on a host whose wall clock is seconds off this one's,
    and a slot must fire when it is due, not early or late by the difference.
    """

    def __init__(self, engine: Engine, clock: Clock | None = None) -> None:
        self.engine = engine
        self._clock = clock
        self._now: datetime | None = None  #: the tick's moment, for the lag its fires report
        self._synced: tuple[Any, ...] | None = None  #: the flows' version the trigger rows were last synced with
        #: A slot fired within this delay is on time; older ones count as missed (`recoverMissedSchedules`).
        self.grace = timedelta(seconds=max(5 * engine.settings.scheduler_interval_s, 5))

    def tick(self) -> list[str]:
        """Fire every due slot; return the ids of the executions created (empty when not the leader)."""
        created: list[tuple[str, str]] = []
        with self.engine.transaction() as session:
            if not store_locks.try_advisory_lock(session, SCHEDULER_LOCK_KEY):
                return []
            now = self._now = self._clock() if self._clock is not None else store.db_now(session)
            tenant = self.engine.settings.tenant
            # Rows follow the flows only when a flow changed: a tick of an unchanged system stays cheap.
            version = store_triggers.flows_version(session, tenant)
            flows = sync_triggers(self.engine, session, now) if version != self._synced else {}
            for fire, rows in (
                (self._fire_due, store_triggers.due_triggers(session, tenant, now)),
                (self._fire_backfill, store_triggers.backfilling_triggers(session, tenant)),
            ):
                for row in rows:
                    found = flows.get((row.namespace, row.flow_id)) or self._live_flow(session, row)
                    if found is None:
                        continue
                    try:
                        # A savepoint per trigger: one broken trigger must not stop the others.
                        with session.begin_nested():
                            created.extend(fire(session, row, found[0], found[1], now))
                    except Exception:
                        logger.exception("trigger %s.%s.%s failed", row.namespace, row.flow_id, row.trigger_id)
        self._synced = version
        for execution_id, actor in created:
            try:
                self.engine.dispatch(execution_id, actor=actor)
            except Exception:
                logger.exception("could not dispatch %s", execution_id, extra={"execution_id": execution_id})
        return [execution_id for execution_id, _ in created]

    def clock(self) -> datetime:
        """Now, by the clock the scheduler fires by: the injected one, or the database's as this tick read it."""
        if self._clock is not None:
            return self._clock()
        return self._now if self._now is not None else store.utcnow()

    def _live_flow(self, session: Session, row: TriggerRow) -> tuple[FlowRevisionRow, Flow] | None:
        flow_row = store.latest_flow(session, row.tenant, row.namespace, row.flow_id)
        if flow_row is None or flow_row.deleted:
            return None
        return flow_row, self.engine.flow_of(flow_row)

    # ---- firing ---------------------------------------------------------------------------------

    def _fire_due(
        self, session: Session, row: TriggerRow, flow_row: FlowRevisionRow, flow: Flow, now: datetime
    ) -> list[tuple[str, str]]:
        trigger = next((t for t in flow.triggers if t.id == row.trigger_id), None)
        if trigger is None or row.next_fire_at is None:
            return []
        actor = trigger_actor(row.namespace, row.flow_id, row.trigger_id)
        if self._stopped(session, row, trigger, actor):
            return []
        cron = schedule.parse_schedule(trigger.type, trigger.properties)
        late = schedule.late_maximum_delay(trigger.properties)
        raw_conditions = trigger.properties.get("conditions")
        conditions = raw_conditions if isinstance(raw_conditions, list) else []
        when = trigger.properties.get("when")  # Kestra 2: skips the slots it is false for, like conditions
        created: list[tuple[str, str]] = []
        slot = row.next_fire_at
        recover = str(trigger.properties.get("recoverMissedSchedules") or "ALL").upper()
        if recover != "ALL" and slot <= now:
            # LAST and NONE: of the slots due, only the newest may fire; NONE fires it only when on time.
            newest = max(slot, schedule.utc(cron.before(now + schedule.ONE_MICROSECOND)))
            slot = newest
            if recover == "NONE" and now - newest > self.grace:
                slot = schedule.utc(cron.after(newest))
        for _ in range(schedule.MAX_SLOTS_PER_TICK):
            if slot > now:
                break
            if late is not None and now - slot > late:
                logger.info("trigger %s skips the slot %s (later than lateMaximumDelay)", actor, slot)
            elif not schedule_conditions_hold(conditions, slot.astimezone(cron.zone)):
                logger.debug("trigger %s skips the slot %s (its conditions do not hold)", actor, slot)
            elif not kestra2.when_holds(when, {"trigger": schedule.trigger_variables(cron, slot)}):
                logger.debug("trigger %s skips the slot %s (its `when` is false)", actor, slot)
            else:
                execution_id = self._start(session, flow_row, flow, trigger, cron, slot, actor)
                if execution_id is not None:
                    created.append((execution_id, actor))
                    row.last_execution_id = execution_id
                row.last_fire_at = slot
            slot = schedule.utc(cron.after(slot))
        row.next_fire_at, row.updated_at = slot, now
        session.flush()
        return created

    def _start(
        self,
        session: Session,
        flow_row: FlowRevisionRow,
        flow: Flow,
        trigger: TriggerSpec,
        cron: schedule.Cron | schedule.Dates,
        slot: datetime,
        actor: str,
        *,
        extra_inputs: dict[str, Any] | None = None,
        labels: list[dict[str, str]] | None = None,
    ) -> str | None:
        variables = schedule.trigger_variables(cron, slot)
        chain = store.flow_chain_key(self.engine.settings.tenant, flow.namespace, flow.id)
        raw_inputs = trigger.properties.get("inputs")
        try:
            inputs = coerce_inputs(
                flow, {**(raw_inputs if isinstance(raw_inputs, dict) else {}), **(extra_inputs or {})}
            )
        except ChorusError as e:
            store.append_audit(
                session, chain, actor=actor, action="trigger.failed", subject=trigger.id,
                payload={"date": variables["date"], "error": e.message},
            )  # fmt: skip
            return None
        execution = self.engine.create_execution(
            session, flow_row, flow, inputs, labels or [], actor=actor,
            trigger={"id": trigger.id, "type": trigger.type_name, "variables": variables},
        )  # fmt: skip
        store.append_audit(
            session, chain, actor=actor, action="trigger.fired", subject=trigger.id,
            payload={"date": variables["date"], "execution_id": execution.id, "backfill": labels is not None},
        )  # fmt: skip
        record_schedule_fire(flow.namespace, flow.id, lag_s=max((self.clock() - slot).total_seconds(), 0.0))
        return execution.id

    def _fire_backfill(
        self, session: Session, row: TriggerRow, flow_row: FlowRevisionRow, flow: Flow, now: datetime
    ) -> list[tuple[str, str]]:
        """Fire the next slots of the trigger's backfill (one execution per slot, labelled as a backfill)."""
        backfill = dict(row.state["backfill"])
        trigger = next((t for t in flow.triggers if t.id == row.trigger_id), None)
        if trigger is None or backfill.get("paused"):
            return []
        actor = trigger_actor(row.namespace, row.flow_id, row.trigger_id)
        cron = schedule.parse_schedule(trigger.type, trigger.properties)
        end = datetime.fromisoformat(backfill["end"])
        labels = [*backfill.get("labels", []), {"key": BACKFILL_LABEL, "value": "true"}]
        created: list[tuple[str, str]] = []
        slot = datetime.fromisoformat(backfill["next"])
        for _ in range(schedule.MAX_SLOTS_PER_TICK):
            if slot > end:
                break
            execution_id = self._start(
                session, flow_row, flow, trigger, cron, slot, actor, extra_inputs=backfill.get("inputs"), labels=labels
            )
            if execution_id is not None:
                created.append((execution_id, actor))
            slot = schedule.utc(cron.after(slot))
        state = {k: v for k, v in row.state.items() if k != "backfill"}
        if slot <= end:
            state["backfill"] = {**backfill, "next": slot.isoformat()}
        else:
            store.append_audit(
                session, store.flow_chain_key(row.tenant, row.namespace, row.flow_id), actor=actor,
                action="trigger.backfill_done", subject=row.trigger_id, payload={"end": backfill["end"]},
            )  # fmt: skip
        row.state, row.updated_at = state, now
        session.flush()
        return created

    def _stopped(self, session: Session, row: TriggerRow, trigger: TriggerSpec, actor: str) -> bool:
        """`stopAfter`: disable the trigger once its last execution ended in one of the listed states."""
        stop_after = trigger.properties.get("stopAfter")
        if not stop_after or row.last_execution_id is None:
            return False
        last = store.get_execution(session, row.last_execution_id)
        states = stop_after if isinstance(stop_after, list) else [stop_after]
        if last is None or last.state not in {str(s) for s in states}:
            return False
        row.enabled = False
        store.append_audit(
            session, store.flow_chain_key(row.tenant, row.namespace, row.flow_id), actor=actor,
            action="trigger.disabled", subject=row.trigger_id,
            payload={"reason": "stopAfter", "execution_id": last.id, "state": last.state},
        )  # fmt: skip
        return True


def sync_triggers(
    engine: Engine, session: Session, now: datetime
) -> dict[tuple[str, str], tuple[FlowRevisionRow, Flow]]:
    """Create, reschedule or drop trigger rows to match the live flows' Schedule triggers (under the scheduler lock).

    Returns the live flows by (namespace, flow id).
    """
    tenant = engine.settings.tenant
    flows: dict[tuple[str, str], tuple[FlowRevisionRow, Flow]] = {}
    wanted: dict[tuple[str, str, str], TriggerSpec] = {}
    for flow_row in store.live_flows(session, tenant):
        try:
            flow = engine.flow_of(flow_row)
        except ChorusError:
            continue
        flows[(flow.namespace, flow.id)] = (flow_row, flow)
        if flow.disabled:
            continue
        for trigger in flow.triggers:
            if trigger.type in SCHEDULE_TYPES and not trigger.disabled:
                wanted[(flow.namespace, flow.id, trigger.id)] = trigger
    existing = {(r.namespace, r.flow_id, r.trigger_id): r for r in store_triggers.triggers_of(session, tenant)}
    for key, row in existing.items():
        if key not in wanted and row.state.get("type") in SCHEDULE_TYPES:
            store_triggers.delete_trigger(session, row)
    for key, trigger in wanted.items():
        fingerprint = _fingerprint(trigger)
        current = existing.get(key)
        if current is not None and current.state.get("fingerprint") == fingerprint:
            continue
        next_fire_at = _first_slot(trigger, now)
        state = {"type": trigger.type, "fingerprint": fingerprint}
        if current is None:
            store_triggers.insert_trigger(session, tenant, key, next_fire_at=next_fire_at, state=state, now=now)
        else:
            current.next_fire_at, current.state, current.updated_at = next_fire_at, {**current.state, **state}, now
    session.flush()
    return flows


def _first_slot(trigger: TriggerSpec, now: datetime) -> datetime | None:
    try:
        return schedule.utc(schedule.parse_schedule(trigger.type, trigger.properties).after(now))
    except ChorusError as e:
        logger.error("trigger %s has an invalid schedule: %s", trigger.id, e.message)
        return None


def _fingerprint(trigger: TriggerSpec) -> str:
    """What decides a trigger's slots: a change reschedules it from now."""
    keys = ("cron", "timezone", "withSeconds", "dates")
    shape = {k: trigger.properties.get(k) for k in keys}
    return hashlib.sha256(json.dumps(shape, sort_keys=True, default=str).encode()).hexdigest()[:16]


def run_scheduler(scheduler: Scheduler, stop: threading.Event, interval_s: float) -> None:
    """Tick until `stop` is set; a failed tick is logged and retried at the next interval."""
    while not stop.is_set():
        try:
            scheduler.tick()
        except Exception:
            logger.exception("scheduler tick failed; retrying at the next interval")
        stop.wait(interval_s)


def start_scheduler_thread(scheduler: Scheduler, interval_s: float) -> tuple[threading.Thread, threading.Event]:
    """The scheduler loop on a daemon thread (`chorus local`); set the event to stop it."""
    stop = threading.Event()
    thread = threading.Thread(
        target=run_scheduler, args=(scheduler, stop, interval_s), name="chorus-scheduler", daemon=True
    )
    thread.start()
    return thread, stop
