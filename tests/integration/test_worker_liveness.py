"""A real worker touches its alive file while its consumer runs on the broker, and stops when the broker goes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.harness.cluster import start_process, stop, worker_command
from tests.harness.waiting import wait_until
from tests.integration.redis_server import redis_server
from workers.liveness import is_fresh

PASSWORD = "p@ss:w/rd#1"


@pytest.mark.parametrize("pool_impl", ["prefork", pytest.param("threads", marks=pytest.mark.slow)])
def test_the_alive_file_stays_fresh_while_the_consumer_runs_and_goes_stale_when_the_broker_is_lost(
    database_url: str, tmp_path: Path, pool_impl: str
) -> None:
    alive = tmp_path / "worker.alive"
    with redis_server(PASSWORD) as broker:
        env = {
            **os.environ,
            "CHORUS_DATABASE_URL": database_url,
            # The password reaches the worker on its own, as the chart passes it.
            "CHORUS_BROKER_URL": f"redis://127.0.0.1:{broker.port}/0",
            "CHORUS_REDIS_PASSWORD": PASSWORD,
            "CHORUS_WORKER_ALIVE_FILE": str(alive),
            "CHORUS_WORKER_ALIVE_INTERVAL_S": "0.5",
            "CHORUS_METRICS_PORT": "0",
            "CHORUS_DATA_DIR": str(tmp_path / "data"),
        }
        worker = start_process(worker_command("control", 2, pool_impl), env, worker=True)
        try:
            wait_until(alive.exists, timeout_s=30, interval_s=0.1, message="the worker touching its alive file")
            first = alive.stat().st_mtime
            wait_until(
                lambda: alive.exists() and alive.stat().st_mtime > first,
                timeout_s=5,
                interval_s=0.1,
                message="the alive file refreshed",
            )
            assert is_fresh(alive, 2.0)

            broker.process.terminate()
            broker.process.wait(10)

            # The worker process lives on (reconnecting), its metrics thread too: only the file tells.
            wait_until(lambda: not is_fresh(alive, 2.0), timeout_s=10, interval_s=0.1, message="a stale alive file")
            assert worker.poll() is None
        finally:
            stop(worker, timeout_s=5)  # its broker is gone: a warm shutdown has nothing to finish


def test_a_missing_file_is_not_fresh(tmp_path: Path) -> None:
    assert not is_fresh(tmp_path / "never-touched", 60)
