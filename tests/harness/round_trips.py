"""Count what one operation costs on the wire: PostgreSQL statements, commits, pool checkouts and Celery messages.

Chorus's cost per task run is its number of round trips (loadtests/README.md, "Where the time goes"), so
tests pin them per operation (tests/integration/test_round_trips.py). Statements are counted by SQLAlchemy's
`before_cursor_execute` on the engine (an executemany is one), commits by its `commit` event, checkouts by the
pool's `checkout` event (each one is a pre-ping round trip: `make_engine` installs `store.pre_ping`), and messages
by Celery's `before_task_publish` signal, which every app of the process sends before a publish.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from celery.signals import before_task_publish
from sqlalchemy import Engine as SqlEngine
from sqlalchemy import event

from orchestrator.engine import Engine
from orchestrator.store.pre_ping import has_pre_ping

__all__ = ["Message", "RoundTrips", "count_round_trips", "sql_engine_of"]


@dataclass(frozen=True)
class Message:
    """A Celery message as published: its task name, queue and keyword arguments."""

    task: str
    queue: str | None
    kwargs: dict[str, Any]
    #: The chain links Celery sends after it, as the worker's `request.chain` holds them (the next one last).
    chain: tuple[dict[str, Any], ...] = ()


@dataclass
class RoundTrips:
    """What was counted inside one `count_round_trips` block."""

    statements: list[str] = field(default_factory=list)
    commits: int = 0
    checkouts: int = 0
    #: Checkouts that pinged the server first (`store.pre_ping`): one more round trip each.
    pings: int = 0
    messages: list[Message] = field(default_factory=list)

    def as_counts(self) -> dict[str, int]:
        return {
            "statements": len(self.statements),
            "commits": self.commits,
            "checkouts": self.checkouts,
            "messages": len(self.messages),
        }

    def summary(self) -> str:
        return f"{len(self.statements)} statements, {self.commits} commits, {self.pings} pings"

    def first_words(self) -> list[str]:
        """Each statement shortened to its first line's first 90 characters (for reading a trace)."""
        return [" ".join(s.split())[:90] for s in self.statements]

    def describe(self) -> str:
        """The counts and every statement's first line, for a failure message."""
        lines = [", ".join(f"{k}={v}" for k, v in self.as_counts().items())]
        lines += [f"  {i + 1:2}. {' '.join(s.split())[:110]}" for i, s in enumerate(self.statements)]
        lines += [f"  message {m.task} -> {m.queue}" for m in self.messages]
        return "\n".join(lines)


def sql_engine_of(engine: Engine) -> SqlEngine:
    """The SQLAlchemy engine behind a Chorus engine's sessions."""
    bind = engine.sessions.kw["bind"]
    assert isinstance(bind, SqlEngine), bind
    return bind


@contextmanager
def count_round_trips(db: SqlEngine) -> Iterator[RoundTrips]:
    """Count statements, commits and checkouts on `db`, and every Celery message this process publishes."""
    counted = RoundTrips()
    pre_ping = has_pre_ping(db)

    def on_statement(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        counted.statements.append(statement)

    def on_commit(_conn: Any) -> None:
        counted.commits += 1

    def on_checkout(*_: Any) -> None:
        counted.checkouts += 1
        counted.pings += pre_ping

    def on_publish(
        sender: str | None = None, body: Any = None, headers: dict[str, Any] | None = None, **extra: Any
    ) -> None:
        # Protocol 2: the body is (args, kwargs, embed), the task name is in the headers.
        kwargs = body[1] if isinstance(body, list | tuple) and len(body) > 1 else {}
        embed = body[2] if isinstance(body, list | tuple) and len(body) > 2 and isinstance(body[2], dict) else {}
        chain = tuple(dict(link) for link in embed.get("chain") or ())
        queue = extra.get("routing_key")
        counted.messages.append(Message(str((headers or {}).get("task", sender)), queue, dict(kwargs), chain))

    event.listen(db, "before_cursor_execute", on_statement)
    event.listen(db, "commit", on_commit)
    event.listen(db.pool, "checkout", on_checkout)
    before_task_publish.connect(on_publish, weak=False)
    try:
        yield counted
    finally:
        before_task_publish.disconnect(on_publish)
        event.remove(db.pool, "checkout", on_checkout)
        event.remove(db, "commit", on_commit)
        event.remove(db, "before_cursor_execute", on_statement)
