"""The pool's pre-ping, bounded to one network timeout: a database that did not answer is not dialled again at once.

SQLAlchemy's `pool_pre_ping` reconnects whenever the ping fails. When the ping failed because the database stopped
answering (a partition: the ping waited out `tcp_user_timeout`, 10 s), the reconnect waits out `connect_timeout`
(10 s) as well, so a request took two timeouts to answer 503 (21.9 s in tests/chaos/partitions.py, 'server host cut
from PostgreSQL'). This ping tells the two failures apart by how long it waited: a connection already dead (the
server restarted, the kernel gave up on it) fails at once, and the pool replaces it (and every older one) as
SQLAlchemy's does; a ping that waited fails the checkout with its own error, so the request answers after one.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Engine, event, exc

#: A ping failing after this long waited for the database (a live connection nobody answered on), rather than
#: finding its connection dead; failures of dead connections take milliseconds.
WAITED_S = 1.0
_FRESH = "chorus_fresh"


def install_pre_ping(engine: Engine) -> None:
    """Ping each connection as it leaves `engine`'s pool, except one just opened (it has just answered)."""
    event.listen(engine, "connect", _opened)
    event.listen(engine, "checkout", _ping)


def has_pre_ping(engine: Engine) -> bool:
    return event.contains(engine, "checkout", _ping)


def _opened(dbapi_connection: Any, record: Any) -> None:
    record.info[_FRESH] = True


def _ping(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    if record.info.pop(_FRESH, False):
        return
    began = time.monotonic()
    try:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("SELECT 1")
        finally:
            cursor.close()
    except Exception as e:  # the driver's errors, or the socket's
        if time.monotonic() - began >= WAITED_S:
            raise  # the pool discards this connection; the caller gets the error (the API: a 503)
        raise exc.InvalidatePoolError(str(e)) from e  # reconnect, and discard the connections older than it
