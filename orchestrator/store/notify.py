"""NOTIFY of flow changes and the LISTEN connection that hears them (PostgreSQL's own pub/sub).

A writer of `flow_revisions` calls `notify_flows_changed` in its transaction: PostgreSQL delivers the
notification to every listener only when that transaction commits, and never if it rolls back. A process
that caches what it read of the flows (the Flow-trigger candidates) listens with `listen_flows` on a
connection of its own, outside the pool: LISTEN must stay active for the connection's life, in autocommit.
"""

from __future__ import annotations

from typing import Any

import psycopg
from sqlalchemy import Select, func, select
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

#: The channel a committed deploy or delete of a flow notifies; the payload is the flow's tenant.
FLOWS_CHANNEL = "chorus_flows"


def notify_flows_changed(session: Session, tenant: str) -> None:
    """Tell every listener that `tenant`'s flows changed, once (and only if) this transaction commits."""
    session.execute(select(func.pg_notify(FLOWS_CHANNEL, tenant)))


def listen_flows(database_url: str, *, connect_timeout_s: int = 5) -> psycopg.Connection[Any]:
    """A new autocommit connection (not from any pool) listening on `FLOWS_CHANNEL`; the caller closes it."""
    conninfo = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    # A listener whose peer vanished without a FIN (a partition, a host gone) learns it from TCP keepalives,
    # after about idle + interval * count = 25 s, and then stops trusting what it cached.
    conn = psycopg.connect(
        conninfo,
        autocommit=True,
        connect_timeout=connect_timeout_s,
        keepalives=1,
        keepalives_idle=10,
        keepalives_interval=5,
        keepalives_count=3,
    )
    try:
        conn.execute(f"LISTEN {FLOWS_CHANNEL}")
    except BaseException:
        conn.close()
        raise
    return conn


def fetch_one(conn: psycopg.Connection[Any], query: Select[*tuple[Any, ...]]) -> tuple[Any, ...]:
    """The one row of `query`, run on a raw psycopg connection (the listener's), not through a session."""
    compiled = query.compile(dialect=PGDialect_psycopg())  # type: ignore[no-untyped-call]
    row = conn.execute(str(compiled), compiled.params).fetchone()
    assert row is not None, "an aggregate returns one row"
    return tuple(row)
