"""SQL over `ledger_replays`: which execution a ledger replay is served from. Caller-owned Session."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert
from sqlalchemy.orm import Session

from orchestrator.store.tables import LedgerReplayRow


def insert_ledger_replay(
    session: Session, execution_id: str, *, source_execution_id: str, live_from: str | None, at: datetime
) -> None:
    session.execute(
        insert(LedgerReplayRow).values(
            execution_id=execution_id, source_execution_id=source_execution_id, live_from=live_from, created_at=at
        )
    )


def ledger_replay_of(session: Session, execution_id: str) -> LedgerReplayRow | None:
    """The ledger replay row of an execution, or None when it is not one."""
    return session.get(LedgerReplayRow, execution_id)
