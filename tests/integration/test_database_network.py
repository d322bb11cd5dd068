"""Database connections bound their network waits on both ends, and a checkout waits out at most one of them.

Packet drops (what `tcp_user_timeout` and keepalives act on) need network namespaces: the partition tests
(tests/chaos/test_partitions.py) cut hosts apart. Here: the server's end gets the same bounds as the client's (its
backend of a vanished client ends, releasing its locks), and the pre-ping's two failures, on a real PostgreSQL
behind a stallable proxy.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from orchestrator.store.database import DatabaseEngine, make_engine, make_url
from orchestrator.store.pre_ping import WAITED_S
from tests.chaos.proxy import StallableProxy


def _settings(engine: DatabaseEngine, *names: str) -> list[str]:
    with engine.connect() as conn:
        return [str(conn.execute(text(f"SHOW {name}")).scalar()) for name in names]


def test_the_server_end_of_a_connection_gets_the_network_bounds(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        names = ("tcp_user_timeout", "tcp_keepalives_idle", "tcp_keepalives_interval", "tcp_keepalives_count")
        assert _settings(engine, *names) == ["10000", "10", "5", "3"]
    finally:
        engine.dispose()


def test_the_urls_options_are_kept_and_win(database_url: str) -> None:
    url = make_url(database_url).update_query_dict({"options": "-c statement_timeout=1234 -c tcp_user_timeout=20000"})
    engine = make_engine(url.render_as_string(hide_password=False))
    try:
        assert _settings(engine, "statement_timeout", "tcp_user_timeout", "tcp_keepalives_idle") == [
            "1234ms",
            "20000",
            "10",
        ]
    finally:
        engine.dispose()


@pytest.fixture
def proxied(database_url: str) -> Iterator[tuple[DatabaseEngine, StallableProxy]]:
    url = make_url(database_url)
    assert url.port is not None
    proxy = StallableProxy(url.port)
    engine = make_engine(url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False))
    yield engine, proxy
    engine.dispose()
    proxy.close()


def _checkout_once(engine: DatabaseEngine) -> None:
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def test_a_dead_pooled_connection_is_replaced_at_checkout(proxied: tuple[DatabaseEngine, StallableProxy]) -> None:
    engine, proxy = proxied
    _checkout_once(engine)
    proxy.drop_connections()  # a restart, as the client sees it: the pooled connection is dead
    time.sleep(0.2)
    _checkout_once(engine)  # the ping fails at once, the pool reconnects: the caller sees nothing


def test_a_ping_that_waited_for_the_database_fails_the_checkout_without_dialling_again(
    proxied: tuple[DatabaseEngine, StallableProxy],
) -> None:
    """SQLAlchemy's own pre-ping reconnects here: a second wait (connect_timeout, 10 s) before the error."""
    engine, proxy = proxied
    _checkout_once(engine)
    proxy.stall()
    waited = WAITED_S + 0.5
    threading.Timer(waited, proxy.drop_connections).start()  # what tcp_user_timeout does after 10 s
    began = time.monotonic()
    with pytest.raises(OperationalError):
        _checkout_once(engine)
    took = time.monotonic() - began
    assert waited <= took < waited + 5, f"the checkout failed after {took:.1f}s"
    proxy.resume()
    _checkout_once(engine)  # the failed connection was discarded: the next checkout connects afresh
