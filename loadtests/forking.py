"""What a forked submitting process must reopen: the parent's pooled database connections."""

from __future__ import annotations

from sqlalchemy import Engine

#: The SQLAlchemy engines a forked submitter must not share with its parent (registered by the stack).
_DATABASES: list[Engine] = []


def reopen_after_fork(database: Engine | None = None) -> None:
    """With `database`: register it. Without: in a forked child, make every registered pool open its own
    connections (the parent's are forgotten, not closed: they are still the parent's). Celery's broker pool
    resets itself after a fork, and redis-py's pools by pid."""
    if database is not None:
        _DATABASES.append(database)
        return
    for registered in _DATABASES:
        registered.dispose(close=False)
