"""What a transaction leaves for after its commit: ended child executions, approval outcomes, callbacks.

Collaborators note these while the transaction is open; `Engine.transaction` takes them, with the
transitions the store recorded, just before it commits, and hands them to the reactions as one
`Committed` value. Nothing here runs before the commit, so no reaction ever sees uncommitted state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from orchestrator import store
from orchestrator.core.states import State
from orchestrator.engine.reactions import Committed
from orchestrator.store.database import Session

_CHILDREN = "engine.ended_children"
_APPROVALS = "engine.approval_outcomes"
_CALLBACKS = "engine.after_commit"


def child_ended(session: Session, execution_id: str) -> None:
    """A child execution ended in this transaction: its waiting parent task run may complete after commit."""
    session.info.setdefault(_CHILDREN, []).append(execution_id)


def approval_decided(session: Session, execution_id: str, outcome: State) -> None:
    """An approval decided that the execution ends in `outcome`: it is ended after commit."""
    session.info.setdefault(_APPROVALS, []).append((execution_id, outcome))


def after_commit(session: Session, callback: Callable[[], object]) -> None:
    """Run `callback` once this transaction has committed, after the reactions (e.g. deliver a published event)."""
    session.info.setdefault(_CALLBACKS, []).append(callback)


def take(
    session: Session, *, flows_version: Callable[[Session], tuple[Any, ...]] | None = None
) -> tuple[Committed, list[Callable[[], object]]]:
    """What the transaction left: the reactions' input and the callbacks to run after them.

    Called before the commit. With `flows_version` (the engine's, set by the triggers package), a transaction
    that changed an execution's state also reads the flows' version (`Committed.flows_version`): at most one statement
    here (none while a flows listener is healthy) instead of a transaction of its own after the commit.
    """
    transitions, ended_flows = store.recorded_changes(session)
    committed = Committed(
        transitions=tuple(transitions),
        ended_children=tuple(session.info.get(_CHILDREN, ())),
        ended_flows=frozenset(ended_flows),
        approval_outcomes=tuple(session.info.get(_APPROVALS, ())),
    )
    if flows_version is not None and committed.changed_executions():
        committed = replace(committed, flows_version=flows_version(session))
    return committed, list(session.info.get(_CALLBACKS, ()))
