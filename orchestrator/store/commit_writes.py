"""What a transaction writes just before it commits: its log lines and its audit events (with their chains'
heads), gathered while it ran and sent as one statement, a round trip less than one per kind."""

from __future__ import annotations

from sqlalchemy import event
from sqlalchemy.orm import Session

from orchestrator.store.audit_chain import write_pending_audit
from orchestrator.store.logs import take_pending_log_lines, write_log_lines


@event.listens_for(Session, "before_commit")
def _write_at_commit(session: Session) -> None:
    lines = take_pending_log_lines(session)
    if not write_pending_audit(session, log_lines=lines):
        write_log_lines(session, lines)  # no events to go with (a read that ends, a transaction that only logs)
