"""Engines with the triggers package wired in: its after-commit reaction starts Flow triggers.

The engine never imports the triggers package (it is the layer below); every process that builds an
engine builds it here, so an execution that changes state (ends, by default) starts the flows whose Flow
trigger accepts it.
"""

from __future__ import annotations

from collections.abc import Sequence
from weakref import WeakKeyDictionary

from celery import Celery

from orchestrator.engine import Engine, LocalRunner
from orchestrator.hooks import EngineHooks
from orchestrator.settings import Settings
from orchestrator.store.database import Session, sessionmaker
from orchestrator.triggers import flow_triggers
from orchestrator.triggers.flows_listener import FlowsListener

_listeners: WeakKeyDictionary[Engine, FlowsListener] = WeakKeyDictionary()


def with_triggers(engine: Engine) -> Engine:
    """`engine`, reacting to executions' state changes by starting the flows their Flow triggers accept.

    Its ends carry the flows' version the reaction's cached candidates are checked against: a flows
    listener's token (no statement) while it hears NOTIFYs, else one read (triggers/flows_listener.py).
    `Engine.close` stops the listener.
    """
    engine.add_reaction(flow_triggers.on_commit)
    listener = FlowsListener(engine.settings.database_url, engine.settings.tenant)
    _listeners[engine] = listener
    engine.flows_version = listener.version
    engine.on_close(listener.close)
    return engine


def flows_listener_of(engine: Engine) -> FlowsListener | None:
    """The flows listener `with_triggers` gave `engine` (None for an engine built without the triggers)."""
    return _listeners.get(engine)


def build_engine(
    settings: Settings,
    sessions: sessionmaker[Session],
    celery: Celery,
    hooks: Sequence[EngineHooks] = (),
    *,
    local_runner: LocalRunner | None = None,
) -> Engine:
    """An engine over `sessions` with the triggers' reaction (and the task bodies it may run itself)."""
    return with_triggers(Engine(settings, sessions, celery, hooks=hooks, local_runner=local_runner))


def engine_from_settings(
    settings: Settings,
    celery: Celery,
    *,
    pool_size: int = 2,
    hooks: Sequence[EngineHooks] = (),
    pre_ping: bool = True,
    local_runner: LocalRunner | None = None,
) -> Engine:
    """An engine over its own connection pool (a worker process's), with the triggers' reaction."""
    engine = Engine.from_settings(
        settings, celery, pool_size=pool_size, hooks=hooks, pre_ping=pre_ping, local_runner=local_runner
    )
    return with_triggers(engine)
