"""A real worker touches its alive file while its consumer runs on the broker, and stops when the broker goes."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from orchestrator.cli.processes import run_worker_process, stop_process
from orchestrator.settings import load_settings
from tests.integration.redis_server import redis_server
from workers.liveness import is_fresh

PASSWORD = "p@ss:w/rd#1"


def _wait(predicate: object, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False


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
        settings = load_settings(database_url=database_url, broker_url=env["CHORUS_BROKER_URL"], worker_pool=pool_impl)
        worker = run_worker_process("control", settings, env)
        try:
            assert _wait(alive.exists, 30), "the worker never touched its alive file"
            first = alive.stat().st_mtime
            assert _wait(lambda: alive.exists() and alive.stat().st_mtime > first, 5), "the file is not refreshed"
            assert is_fresh(alive, 2.0)

            broker.process.terminate()
            broker.process.wait(10)

            # The worker process lives on (reconnecting), its metrics thread too: only the file tells.
            assert _wait(lambda: not is_fresh(alive, 2.0), 10)
            assert worker.poll() is None
        finally:
            stop_process(worker, timeout_s=5)  # its broker is gone: a warm shutdown has nothing to finish


def test_a_missing_file_is_not_fresh(tmp_path: Path) -> None:
    assert not is_fresh(tmp_path / "never-touched", 60)
