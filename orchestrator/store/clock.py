"""Timestamps as the database and Kestra's JSON see them, and the one clock every process agrees on.

Workers and servers run on hosts whose wall clocks may be seconds apart (NTP slews slowly, containers drift). A
time one process writes (a retry's due time, a heartbeat, a pause's wake-up) and another compares with its own
`datetime.now()` would fire early or late by the skew. So every time that another process compares is taken
from PostgreSQL's clock: `db_now` asks it, `transaction_now` reads it once per transaction (for free when the
transaction's execution lock already returned it) and advances it on this process's monotonic clock, and
`DbClock` carries such a reading out of the transaction, to a worker's task body.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import event, text
from sqlalchemy.orm import Session

_ANCHOR = "db_clock_anchor"  #: session.info: (the database's time, this process's time.monotonic() then)


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_rollback")
def _forget_anchor(session: Session) -> None:
    session.info.pop(_ANCHOR, None)


def iso_millis(moment: datetime) -> str:
    """Kestra's rendering of instants in expressions: milliseconds, UTC, `Z`."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def utcnow() -> datetime:
    """This process's wall clock: for what no other process compares (log lines, displayed dates)."""
    return datetime.now(UTC)


def db_now(session: Session) -> datetime:
    """The database's clock: the one clock every process agrees on, for heartbeats and their staleness."""
    moment: datetime = session.scalar(text("SELECT now()"))
    anchor(session, moment)
    return moment


def anchor(session: Session, moment: datetime) -> None:
    """Note the database's time a statement of this transaction returned (`now()`), for `transaction_now`."""
    session.info.setdefault(_ANCHOR, (moment, time.monotonic()))


def transaction_now(session: Session) -> datetime:
    """The database's clock in this transaction: its `now()`, read once (no query when the execution's lock
    returned it), advanced by this process's monotonic clock, so times set within it still move forward."""
    held = session.info.get(_ANCHOR)
    if held is None:
        return db_now(session)
    moment: datetime = held[0]
    return moment + timedelta(seconds=time.monotonic() - held[1])


@dataclass(frozen=True)
class DbClock:
    """The database's clock outside a transaction: a reading of it, advanced by this process's monotonic clock.

    A worker's task body gets the one its claim read: a Pause's wake-up, an Approval's expiry or the rest of a
    Sleep are then by the database's clock, which the sweeper that acts on them reads too, whatever this
    host's wall clock says.
    """

    at: datetime
    taken: float = field(default_factory=time.monotonic)

    @classmethod
    def of(cls, session: Session) -> DbClock:
        return cls(transaction_now(session))

    def now(self) -> datetime:
        return self.at + timedelta(seconds=time.monotonic() - self.taken)


def db_started_at(session: Session) -> datetime:
    """When the database server started: right after a restart, no worker has had the chance to heartbeat."""
    moment: datetime = session.scalar(text("SELECT pg_postmaster_start_time()"))
    return moment


def iso(moment: datetime) -> str:
    """Kestra's timestamp form: ISO-8601 in UTC with a `Z`."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
