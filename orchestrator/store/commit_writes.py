"""What a transaction writes just before it commits: the task runs it created (`pending_runs`), its log lines and
its audit events (with their chains' heads), gathered while it ran and sent as one statement, a round trip less
than one per kind."""

from __future__ import annotations

from sqlalchemy import event
from sqlalchemy.orm import Session

from orchestrator.store import pending_runs
from orchestrator.store.audit_chain import write_pending_audit
from orchestrator.store.logs import take_pending_log_lines, write_log_lines


@event.listens_for(Session, "before_commit")
def _write_at_commit(session: Session) -> None:
    runs = pending_runs.take_pending(session)
    lines = take_pending_log_lines(session)
    if not write_pending_audit(session, log_lines=lines, task_runs=runs):
        # No events to go with (a read that ends, a transaction that only logs); a created task run always has its
        # events, so none waits here, but were one to, it is written on its own first.
        if runs is not None:
            raise AssertionError("task runs created without their audit events")
        write_log_lines(session, lines)
