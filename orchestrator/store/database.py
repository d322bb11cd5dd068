"""Database plumbing: the SQLAlchemy engine, sessions, and Alembic upgrades to head."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, make_url, text
from sqlalchemy.orm import Session, object_session, sessionmaker

from orchestrator.core.audit import AuditKey
from orchestrator.store.locks import lock_migrations
from orchestrator.store.pre_ping import install_pre_ping

_MIGRATIONS = Path(__file__).parent / "migrations"

#: The layers above the store name SQLAlchemy's types through here: the store is SQLAlchemy's only importer.
DatabaseEngine = Engine

__all__ = [
    "DatabaseEngine",
    "Session",
    "make_engine",
    "make_sessionmaker",
    "make_url",
    "migrate",
    "object_session",
    "ping",
    "read_only",
    "sessionmaker",
    "transaction",
]


#: libpq's defaults for every connection, unless the URL sets them. Without them a connection to a server the
#: network no longer reaches (a partition drops packets; nothing answers, nothing refuses) waits for the kernel's
#: TCP retransmissions to give up, about 15 minutes: API requests hang instead of answering 503, and a worker's
#: recording waits as long. With them a query whose packets go unacknowledged for 10 s fails, an idle connection
#: is probed (keepalives), and a connection attempt gives up after 10 s; a long query on a reachable server is
#: not affected (its server acknowledges packets and keepalive probes while it works).
NETWORK_TIMEOUTS: dict[str, int] = {
    "connect_timeout": 10,
    "tcp_user_timeout": 10_000,
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
}


#: The same bounds asked of the server's end of each connection (startup `options`, ahead of any the URL gives, so
#: the URL's win). Without them a backend whose client vanished behind a partition lives on: blocked sending a result
#: until the kernel's retransmissions give up (~15 minutes), or idle in its transaction for as long as PostgreSQL's
#: keepalives allow (2 hours by default), holding every lock it took. A scheduler or sweeper cut mid-tick kept the
#: advisory lock of its leadership so: the standby could not tick (tests/chaos/partitions.py, 'server host cut from
#: PostgreSQL': the schedule never fired). With them the backend ends, and its locks with it, within ~15 s.
SERVER_NETWORK_OPTIONS = " ".join(
    f"-c {name}={NETWORK_TIMEOUTS[key]}"
    for name, key in (
        ("tcp_user_timeout", "tcp_user_timeout"),
        ("tcp_keepalives_idle", "keepalives_idle"),
        ("tcp_keepalives_interval", "keepalives_interval"),
        ("tcp_keepalives_count", "keepalives_count"),
    )
)


def connect_args(database_url: str) -> dict[str, object]:
    """libpq parameters for `database_url`: `NETWORK_TIMEOUTS` where the URL does not set them, and
    `SERVER_NETWORK_OPTIONS` before the URL's own `options`."""
    given = make_url(database_url).query
    args: dict[str, object] = {key: value for key, value in NETWORK_TIMEOUTS.items() if key not in given}
    url_options = given.get("options")
    url_options = " ".join(url_options) if isinstance(url_options, tuple) else url_options
    # connect_args replace the URL's parameters of the same name: keep the URL's options after ours.
    args["options"] = f"{SERVER_NETWORK_OPTIONS} {url_options}" if url_options else SERVER_NETWORK_OPTIONS
    return args


def make_engine(database_url: str, *, pool_size: int = 5, pre_ping: bool = True) -> Engine:
    """A pooled engine; `pre_ping` tests each connection as it leaves the pool, so that a request after a
    database restart does not fail on a dead one. That is a round trip per transaction: a worker goes
    without it, as it retries recording an outcome on a dead connection (workers/runtime.py), and any
    other failed transaction leaves its task run to the sweeper; the first failure invalidates the pool.
    Connections get `connect_args` (network timeouts on both ends)."""
    engine = create_engine(
        database_url,
        pool_size=pool_size,
        max_overflow=10,
        future=True,
        connect_args=connect_args(database_url),
    )
    if pre_ping:
        install_pre_ping(engine)
    return engine


def make_sessionmaker(engine: Engine, *, audit_key: AuditKey | None = None) -> sessionmaker[Session]:
    """Sessions for one process; with `audit_key`, every audit event they append carries its MAC."""
    info: dict[str, object] = {} if audit_key is None else {"audit_key": audit_key}
    return sessionmaker(engine, expire_on_commit=False, autoflush=False, info=info)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One operation, one transaction: commit on success, roll back on any error."""
    with factory() as session, session.begin():
        yield session


@contextmanager
def read_only(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session for reads that ends with COMMIT, not ROLLBACK: psycopg forgets every prepared statement
    of a connection on each rollback, and a read-only transaction commits for the same price."""
    with factory() as session, session.begin():
        yield session


def ping(session: Session, *, timeout_ms: int) -> None:
    """A trivial query that fails (raises) when the database does not answer within `timeout_ms`."""
    session.execute(text(f"SET LOCAL statement_timeout = {int(timeout_ms)}"))
    session.execute(text("SELECT 1"))


def migrate(engine: Engine, *, runtime_role: str | None = None, runtime_url: str | None = None) -> None:
    """Upgrade the schema to the newest Alembic revision (idempotent, safe to run concurrently).

    With `runtime_role`, the role the server and workers use then gets exactly its privileges
    (`db_roles.prepare_runtime_role`), created first if missing and `runtime_url` carries its password.
    """
    from orchestrator.store.db_roles import prepare_runtime_role

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    with engine.begin() as connection:
        lock_migrations(connection)
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
        if runtime_role is not None:
            prepare_runtime_role(connection, runtime_role, runtime_url)
