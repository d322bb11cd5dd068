"""Realtime triggers: one execution per message of a queue the user already runs (Redis Streams, AMQP).

`RealtimeRunner.poll_once` finds the live flows with a realtime trigger, and for each asks its source
(triggers.realtime_redis, triggers.realtime_amqp) for a batch of messages. Each message starts its
execution through `events.start_once`, keyed by the message id, and is acknowledged only after that
transaction committed: a consumer killed in between leaves the message unacknowledged, it comes back, and
the receipt turns the second delivery into a no-op. Every replica of `chorus scheduler` may consume: the
queues share the messages out and the receipts make a double delivery harmless.

Back-pressure: a flow with a `concurrency` limit that is reached is not read at all, so messages wait in
the user's queue (where its own tooling sees them) rather than as QUEUED executions.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from orchestrator import store
from orchestrator.core.errors import ChorusError, ExpressionError
from orchestrator.core.expressions import is_true, render, render_value
from orchestrator.core.flow import Flow, TriggerSpec
from orchestrator.engine import events
from orchestrator.observability import metrics
from orchestrator.store import triggers as store_triggers
from orchestrator.store.database import read_only
from orchestrator.store.tables import FlowRevisionRow
from orchestrator.triggers import realtime_amqp, realtime_redis
from orchestrator.triggers.realtime_source import Message, Source, SourceFactory

if TYPE_CHECKING:
    from orchestrator.engine import Engine

logger = logging.getLogger(__name__)

REALTIME_TYPES = ("RedisStream", "AmqpRealtime")


def _default_factories() -> dict[str, SourceFactory]:
    return {"RedisStream": realtime_redis.open_source, "AmqpRealtime": realtime_amqp.open_source}


class RealtimeRunner:
    """Consumes every realtime trigger of the live flows, one batch per trigger per poll."""

    def __init__(self, engine: Engine, *, batch_size: int = 100) -> None:
        self.engine = engine
        self.batch_size = batch_size
        self._factories = _default_factories()
        #: Open sources by (namespace, flow, trigger, revision): a new revision opens a new consumer.
        self._sources: dict[tuple[str, str, str, int], Source] = {}
        #: The realtime triggers as of a flows version: polls of an unchanged system read one aggregate,
        #: not every flow's text (an idle loop polls five times a second).
        self._known: tuple[tuple[Any, ...], list[tuple[FlowRevisionRow, Flow, TriggerSpec]]] | None = None

    def poll_once(self) -> int:
        """Read and start one batch per trigger; return how many messages were handled."""
        handled = 0
        wanted = set()
        for flow_row, flow, trigger in self._triggers():
            key = (flow.namespace, flow.id, trigger.id, flow_row.revision)
            wanted.add(key)
            try:
                handled += self._poll(key, flow_row, flow, trigger)
            except Exception:
                logger.exception("realtime trigger %s.%s.%s failed; retrying", *key[:3])
                self._drop(key)  # a broken connection is opened again at the next poll
        for key in set(self._sources) - wanted:
            self._drop(key)  # the flow was deleted, disabled or replaced by a new revision
        return handled

    def close(self) -> None:
        for key in list(self._sources):
            self._drop(key)

    def _poll(self, key: tuple[str, str, str, int], flow_row: FlowRevisionRow, flow: Flow, trigger: TriggerSpec) -> int:
        source = self._sources.get(key)
        if source is None:
            source = self._sources[key] = self._factories[trigger.type](self._connection_properties(trigger))
        labels = key[:3]
        room = self._room(flow)
        handled = 0
        if room > 0:
            configured = trigger.properties.get("batchSize")
            size = configured if isinstance(configured, int) and configured > 0 else self.batch_size
            for message in source.read(min(room, size)):
                outcome = "skipped"
                if _when_holds(trigger, message):
                    started = events.start_once(
                        self.engine, f"{trigger.type}:{message.id}", flow_row, flow, trigger, message.variables,
                        audit={"message_id": message.id},
                    )  # fmt: skip
                    outcome = "started" if started else "duplicate"
                # Committed (or committed earlier by another delivery): only now may the queue forget it.
                message.ack()
                metrics.record_realtime_message(*labels, outcome=outcome)
                handled += 1
        metrics.set_realtime_lag(*labels, lag=source.lag())
        return handled

    def _connection_properties(self, trigger: TriggerSpec) -> dict[str, Any]:
        """The trigger's properties but `inputs` and `when` (rendered per message), with `envs` and `globals`."""
        props = {k: v for k, v in trigger.properties.items() if k not in ("inputs", "when")}
        settings = self.engine.settings
        rendered = render_value(props, {"envs": dict(settings.envs), "globals": dict(settings.globals_)})
        return rendered if isinstance(rendered, dict) else props

    def _room(self, flow: Flow) -> int:
        """How many executions the flow may start now: unbounded without a `concurrency` limit."""
        if flow.concurrency is None:
            return self.batch_size
        with read_only(self.engine.sessions) as session:
            active = store.count_active_executions(session, self.engine.settings.tenant, flow.namespace, flow.id)
        return max(0, flow.concurrency.limit - active)

    def _triggers(self) -> list[tuple[FlowRevisionRow, Flow, TriggerSpec]]:
        with read_only(self.engine.sessions) as session:
            version = store_triggers.flows_version(session, self.engine.settings.tenant)
        if self._known is not None and self._known[0] == version:
            return self._known[1]
        found = list(self._read_triggers())
        self._known = (version, found)
        return found

    def _read_triggers(self) -> Iterable[tuple[FlowRevisionRow, Flow, TriggerSpec]]:
        with read_only(self.engine.sessions) as session:
            tenant = self.engine.settings.tenant
            rows = list(store.live_flows_mentioning(session, tenant, "RedisStream", "RealtimeTrigger"))
            session.expunge_all()
        for row in rows:
            try:
                flow = self.engine.flow_of(row)
            except ChorusError:
                continue
            if flow.disabled:
                continue
            for trigger in flow.triggers:
                if trigger.type in REALTIME_TYPES and not trigger.disabled:
                    yield row, flow, trigger

    def _drop(self, key: tuple[str, str, str, int]) -> None:
        source = self._sources.pop(key, None)
        if source is not None:
            try:
                source.close()
            except Exception:
                logger.warning("closing realtime source %s failed", key, exc_info=True)


def _when_holds(trigger: TriggerSpec, message: Message) -> bool:
    """The trigger's `when` over `trigger.*`; a message it cannot be rendered for starts nothing (and is logged)."""
    expression = trigger.properties.get("when")
    if expression is None:
        return True
    try:
        return is_true(render(str(expression), {"trigger": message.variables}))
    except ExpressionError as e:
        logger.warning(
            "realtime trigger %s: `when` could not be rendered for message %s: %s", trigger.id, message.id, e
        )
        return False


def run_realtime(runner: RealtimeRunner, stop: threading.Event, idle_s: float = 0.2) -> None:
    """Poll until `stop` is set, at once again while messages flow, after `idle_s` when none came."""
    try:
        while not stop.is_set():
            try:
                handled = runner.poll_once()
            except Exception:
                logger.exception("realtime poll failed; retrying")
                handled = 0
            if handled == 0:
                stop.wait(idle_s)
    finally:
        runner.close()


def start_realtime_thread(runner: RealtimeRunner) -> tuple[threading.Thread, threading.Event]:
    """The realtime loop on a daemon thread (`chorus scheduler`); set the event to stop it."""
    stop = threading.Event()
    thread = threading.Thread(target=run_realtime, args=(runner, stop), name="chorus-realtime", daemon=True)
    thread.start()
    return thread, stop
