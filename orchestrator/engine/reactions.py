"""After-commit reactions: what the engine does once a transaction that changed state has committed.

A reaction takes the engine and one `Committed` value and runs after the commit, in registration
order, so it never sees (or acts on) uncommitted state. The engine starts with `DEFAULT_REACTIONS`;
other packages add theirs at wiring time with `Engine.add_reaction` (the triggers package starts
Flow triggers this way), the way dramatiq registers its default middleware and lets a broker add more.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from orchestrator.core.states import State
from orchestrator.engine import child_failure, operations, sla_assertions, subflows, submission
from orchestrator.hooks import Transition, emit_transitions

if TYPE_CHECKING:
    from orchestrator.engine.facade import Engine

FlowKey = tuple[str, str, str]  #: (tenant, namespace, flow id)


@dataclass(frozen=True)
class Committed:
    """What one committed transaction changed: the one input of every after-commit reaction."""

    transitions: tuple[Transition, ...]
    #: Child executions that ended: their parent task runs may complete.
    ended_children: tuple[str, ...]
    #: Flows with a concurrency limit of which an execution ended: a queued one may start.
    ended_flows: frozenset[FlowKey]
    #: Executions an approval decided to end, with the state to end them in.
    approval_outcomes: tuple[tuple[str, State], ...]
    #: The flows' version as the transaction that ended executions saw it, when the engine reads one
    #: (`Engine.flows_version`: the listener's token, or `store.triggers.flows_version`); None otherwise.
    flows_version: tuple[Any, ...] | None = None

    def ended_executions(self) -> list[str]:
        """Executions that just ended: a terminal state reached from a live one."""
        return [
            t.execution_id
            for t in self.transitions
            if t.kind == "execution"
            and State(t.state).is_terminal
            and t.previous is not None
            and not State(t.previous).is_terminal
        ]

    def paused_executions(self) -> list[str]:
        """Executions that just paused (a Pause or Approval task waits): Flow triggers look at them too."""
        return [
            t.execution_id
            for t in self.transitions
            if t.kind == "execution" and t.state == str(State.PAUSED) and t.previous != str(State.PAUSED)
        ]


Reaction = Callable[["Engine", Committed], None]


def notify_hooks(engine: Engine, committed: Committed) -> None:
    """The lifecycle hooks (metrics, notifications) observe every transition."""
    if committed.transitions and engine.hooks:
        emit_transitions(engine.hooks, committed.transitions)


def assert_slas(engine: Engine, committed: Committed) -> None:
    """SLA assertions are checked on the executions that changed."""
    if committed.transitions:
        sla_assertions.on_transitions(engine, committed.transitions)


def complete_parents(engine: Engine, committed: Committed) -> None:
    """A parent task run waiting on its child executions completes when they have all ended."""
    for child_id in committed.ended_children:
        subflows.on_child_ended(engine, child_id)


def admit_queued(engine: Engine, committed: Committed) -> None:
    """A freed concurrency slot starts the flow's oldest queued executions."""
    for tenant, namespace, flow_id in committed.ended_flows:
        submission.admit_queued(engine, tenant, namespace, flow_id)


def end_decided(engine: Engine, committed: Committed) -> None:
    """An approval that decided the execution's end ends it."""
    for execution_id, outcome in committed.approval_outcomes:
        operations.end_execution_as(engine, execution_id, outcome, actor="system:approval")


def interrupt_after_failures(engine: Engine, committed: Committed) -> None:
    """`onChildFailure` interrupts the siblings of a failed task run."""
    if committed.transitions:
        child_failure.interrupt_after_failures(engine, committed.transitions)


#: The engine's own reactions, in the order they run.
DEFAULT_REACTIONS: tuple[Reaction, ...] = (
    notify_hooks,
    assert_slas,
    complete_parents,
    admit_queued,
    end_decided,
    interrupt_after_failures,
)
