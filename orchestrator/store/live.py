"""State predicates written as SQL literals, so the planner can match them to the partial indexes.

A partial index is usable only when the query's WHERE provably implies the index's WHERE. A bound parameter
(`state = $1`) proves nothing once psycopg prepares the statement and PostgreSQL settles on a generic plan,
so the due and admission queries spell their states inline, exactly as migration 0012 wrote the indexes.
The states are our own enum members, never input.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import ColumnElement, literal_column
from sqlalchemy.orm import InstrumentedAttribute

from orchestrator.core.states import TERMINAL, State

#: Every state a row can still leave on its own; the order is the migration's (`ix_executions_live`).
LIVE = (State.CREATED, State.QUEUED, State.RUNNING, State.PAUSED, State.RETRYING, State.RESTARTED, State.KILLING)
assert set(LIVE) == set(State) - TERMINAL, "a new state must join LIVE (and its partial indexes) or TERMINAL"
#: LIVE as the partial indexes' WHERE spells it (`tables.py`); migration 0012 froze this very text.
LIVE_PREDICATE = "state IN (" + ", ".join(f"'{s.value}'" for s in LIVE) + ")"


def state_is(column: InstrumentedAttribute[str], state: State) -> ColumnElement[bool]:
    return column == literal_column(f"'{state.value}'")


def state_in(column: InstrumentedAttribute[str], states: Iterable[State]) -> ColumnElement[bool]:
    return column.in_([literal_column(f"'{s.value}'") for s in states])
