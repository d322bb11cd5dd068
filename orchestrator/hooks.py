"""Lifecycle hooks: cross-cutting concerns (metrics, notifications) observe committed state changes here.

Hooks run after the transaction that made the change has committed, in registration order. Each
takes one frozen dataclass so it can grow. A failing hook is logged loudly and never undoes or
hides the change it observes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from orchestrator.core.transition import Transition

__all__ = ["EngineHooks", "Transition", "emit_transitions"]

logger = logging.getLogger(__name__)


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
