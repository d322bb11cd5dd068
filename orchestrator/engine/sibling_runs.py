"""The task runs a message of inline task runs shows their expressions: read once per transaction, kept current."""

from __future__ import annotations

import bisect

from orchestrator import store
from orchestrator.store.database import Session
from orchestrator.store.tables import TaskRunRow


class VariableRuns:
    """`store.task_runs_for_variables` of one execution, read once by a transaction holding its lock.

    Nothing outside the transaction changes them while it holds the lock, so only its own task runs need
    following: `current(row)` after one is claimed or finished keeps the list as that query would return it
    (same rows, same `seq` order), without reading the execution's task runs again for every sibling.
    """

    def __init__(self, session: Session, execution_id: str) -> None:
        self._rows = list(store.task_runs_for_variables(session, execution_id))
        self._ids = {r.id for r in self._rows}

    def current(self, row: TaskRunRow) -> list[TaskRunRow]:
        """The task runs after `row` changed: the query keeps those with outputs or a decision, and root ones."""
        visible = row.parent_id is None or row.outputs is not None or row.decision is not None
        if visible and row.id not in self._ids:
            self._rows.insert(bisect.bisect([r.seq for r in self._rows], row.seq), row)
            self._ids.add(row.id)
        elif not visible and row.id in self._ids:
            self._rows = [r for r in self._rows if r.id != row.id]
            self._ids.discard(row.id)
        return self._rows
