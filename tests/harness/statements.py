"""Counting the round trips an operation makes: statements, commits and pool pre-pings on one database engine.

`count_statements(engine)` listens to the engine's own events, so it sees what the application sends, as
the server would: `before_cursor_execute` (each statement, `executemany` counted once, as it is one round
trip with psycopg's pipeline), `commit`, and the pool's `checkout` (a pre-ping is one more round trip on
every checkout when the engine pings; the dialect runs it on the raw connection, outside the events).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.orm import Session, sessionmaker

__all__ = ["StatementCount", "count_statements", "database_engine_of"]


@dataclass
class StatementCount:
    """What the engine sent while the context was open."""

    statements: list[str] = field(default_factory=list)
    #: The statements sent as `executemany` (one per parameter set on the server, pipelined by psycopg).
    executemany: list[str] = field(default_factory=list)
    commits: int = 0
    pings: int = 0

    @property
    def round_trips(self) -> int:
        return len(self.statements) + self.commits + self.pings

    def summary(self) -> str:
        return f"{len(self.statements)} statements, {self.commits} commits, {self.pings} pings"

    def first_words(self) -> list[str]:
        """Each statement shortened to its first line's first 90 characters (for reading a trace)."""
        return [" ".join(s.split())[:90] for s in self.statements]


def database_engine_of(sessions: sessionmaker[Session]) -> Engine:
    """The database engine a sessionmaker binds (what `Engine.sessions` was built on)."""
    bind = sessions.kw["bind"]
    assert isinstance(bind, Engine)
    return bind


@contextmanager
def count_statements(engine: Engine) -> Iterator[StatementCount]:
    """Count what `engine` sends to the database inside the block (every thread using it counts)."""
    count = StatementCount()
    pre_ping = bool(getattr(engine.pool, "_pre_ping", False))

    def on_statement(_conn: Any, _cursor: Any, statement: str, _parameters: Any, _context: Any, many: bool) -> None:
        count.statements.append(statement)
        if many:
            count.executemany.append(statement)

    def on_commit(_conn: Any) -> None:
        count.commits += 1

    def on_checkout(*_: Any) -> None:
        if pre_ping:
            count.pings += 1

    event.listen(engine, "before_cursor_execute", on_statement)
    event.listen(engine, "commit", on_commit)
    event.listen(engine.pool, "checkout", on_checkout)
    try:
        yield count
    finally:
        event.remove(engine, "before_cursor_execute", on_statement)
        event.remove(engine, "commit", on_commit)
        event.remove(engine.pool, "checkout", on_checkout)
