"""A transaction holding an advisory lock whose client is cut from PostgreSQL loses the lock within ~15 s.

Leadership in Chorus is a transaction-scoped advisory lock (the scheduler's tick, the sweeper's pass). A leader cut
mid-transaction cannot roll back; only its backend ending releases the lock. Without network bounds on the
server's end of the connection, an idle-in-transaction backend of a vanished client lives on for PostgreSQL's
keepalive default (two hours) and the standby never leads (store/database.py `SERVER_NETWORK_OPTIONS`). PostgreSQL
runs in a network namespace; the cut drops every packet between it and this process. Needs root, `ip` and `nft`.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from orchestrator.store.database import DatabaseEngine, make_engine
from orchestrator.store.locks import SCHEDULER_LOCK_KEY
from tests.harness.netns import NetworkLab, netns_available

pytestmark = [pytest.mark.chaos, pytest.mark.slow]

#: The server's bound: keepalive probes from 10 s idle, the connection ended when unacknowledged 10 s (user timeout).
SERVER_BOUND_S = 15.0


@pytest.fixture
def lab_postgres() -> Iterator[tuple[NetworkLab, str]]:
    problem = netns_available()
    if problem is not None:
        pytest.fail(f"this test needs network namespaces: {problem}")
    root = Path(tempfile.mkdtemp(prefix="chorus-lockcut-"))
    root.chmod(0o711)
    with NetworkLab() as lab:
        host = lab.add_host("pg")
        log = root / "postgres.log"
        argv = [*host.prefix, sys.executable, "-m", "tests.harness.netns_serve", "postgres", str(root / "postgres")]
        with log.open("w") as out:
            server = subprocess.Popen([*argv, host.ip, "5432", str(lab.network)], stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while "ready " not in log.read_text():
                assert server.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
            yield lab, f"postgresql+psycopg://postgres@{host.ip}:5432/chorus"
        finally:
            lab.heal_all()
            server.terminate()
            server.wait(30)
            shutil.rmtree(root, ignore_errors=True)


def _try_lock(engine: DatabaseEngine) -> bool:
    with engine.connect() as conn:
        return bool(conn.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": SCHEDULER_LOCK_KEY}).scalar())


def test_a_lock_holder_cut_from_postgresql_loses_its_lock(lab_postgres: tuple[NetworkLab, str]) -> None:
    lab, url = lab_postgres
    leader, standby = make_engine(url, pool_size=1), make_engine(url, pool_size=1)
    try:
        holder = leader.connect()
        holder.begin()
        assert holder.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": SCHEDULER_LOCK_KEY}).scalar()
        assert not _try_lock(standby)  # held: the standby waits its turn
        standby.dispose()  # its idle connection would be cut too
        lab.cut_from_operator("pg")
        time.sleep(SERVER_BOUND_S + 5)
        lab.heal_from_operator("pg")
        deadline = time.monotonic() + 5
        while not _try_lock(standby):
            assert time.monotonic() < deadline, "the cut leader's backend still holds the lock after the heal"
            time.sleep(0.2)
        holder.invalidate()
    finally:
        leader.dispose()
        standby.dispose()
