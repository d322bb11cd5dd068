"""Lifecycle hooks: cross-cutting concerns (metrics, notifications) observe committed state changes here.

Hooks run after the transaction that made the change has committed, in registration order. Each
takes one frozen dataclass so it can grow. A failing hook is logged loudly and never undoes or
hides the change it observes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Transition:
    """One committed state change of an execution or a task run."""

    kind: str  #: "execution" or "task_run"
    subject_id: str
    execution_id: str
    namespace: str
    flow_id: str
    task_id: str | None
    task_type: str | None
    previous: str | None  #: None when the row was created in this state; equal to `state` for a take-over
    state: str
    at: datetime
    started_at: datetime  #: when the subject was created (durations are `at - started_at`)
    attempt: int | None = None  #: a task run's attempt number after the change
    attempt_started_at: datetime | None = None  #: when that attempt was claimed
    retry_at: datetime | None = None  #: when a RETRYING task run's next attempt is due
    actor: str | None = None  #: who made the change, as audited (`worker:<owner>`, `system:sweeper`, ...)


class EngineHooks:
    """Base class with no-op defaults; override what you need."""

    def after_transition(self, transition: Transition) -> None:
        """Called once per committed transition."""


def emit_transitions(hooks: Sequence[EngineHooks], transitions: Sequence[Transition]) -> None:
    for transition in transitions:
        for hook in hooks:
            try:
                hook.after_transition(transition)
            except Exception:
                logger.critical("hook %r failed on %s", hook, transition, exc_info=True)
