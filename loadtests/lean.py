"""`python -m loadtests.lean [N]`: CPU time and round trips per one-task Log execution, in one process.

Submits and runs N one-task Log executions the way a worker runs them (`Engine.run_inline`), on a fresh
migrated database, with a broker in memory (no broker I/O in the numbers), and prints this process's CPU
time per execution (`time.process_time`: the controller's Python and the driver, not PostgreSQL's side) and
the statements, commits and pre-pings per submit and per worker transaction.
"""

from __future__ import annotations

import sys
import time

from celery import Celery

from orchestrator.engine import Engine, TaskRunCoordinates
from orchestrator.store.database import make_engine, migrate
from tests.harness import services
from tests.harness.engines import open_engine
from tests.harness.round_trips import count_round_trips, sql_engine_of
from workers.runtime import run_claimed

FLOW = """
id: lean_cpu
namespace: loadtests.lean
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: hello
"""


def _one(engine: Engine) -> None:
    execution_id = engine.submit("loadtests.lean", "lean_cpu", inputs={}, actor="load").id
    engine.run_inline(
        execution_id,
        [TaskRunCoordinates(execution_id, "hello", None, None, 1)],
        join=True,
        skip_runs=False,
        owner="load",
        celery_task_id="load",
        requested_by=None,
        run=lambda claimed: run_claimed(claimed, engine),
    )


def main(count: int) -> None:
    admin = services.postgres_admin_url()
    name = services.unique_database_name("lean")
    url = services.create_database(admin, name)
    try:
        owner = make_engine(url, pool_size=1)
        migrate(owner)
        owner.dispose()
        with open_engine(url, celery=Celery(broker="memory://")) as engine:
            engine.deploy_flow(FLOW, actor="load")
            for _ in range(10):
                _one(engine)  # warm: caches, pooled connections
            with count_round_trips(sql_engine_of(engine)) as counted:
                started = time.process_time()
                for _ in range(count):
                    _one(engine)
                spent = time.process_time() - started
        per = counted.statements, counted.commits, counted.pings
        sys.stdout.write(
            f"{count} executions: {spent * 1000 / count:.2f} ms CPU each; per execution "
            f"{len(per[0]) / count:.1f} statements, {per[1] / count:.1f} commits, {per[2] / count:.1f} pings\n"
        )
    finally:
        services.drop_database(admin, name)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
