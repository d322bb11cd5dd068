"""Many writers of one execution's audit chain at once, on the real stack: no deadlock, no fork, nothing lost.

Fifty ForEach children on the io pool are claimed and finished by two workers (four processes) at once; each
transaction locks the execution row and then, in the same statement, its chain's head. Beside them a writer
that locks only the head (as the LLM ledger and the agent journal do) appends to the same chain. PostgreSQL's
own deadlock counter for the database must not move, and the chain must verify end to end.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import text

from orchestrator import store
from orchestrator.engine.audit_trail import verify_chains
from orchestrator.store.database import make_engine, make_sessionmaker, transaction
from tests.e2e.conftest import Stack

WIDTH = 50

FAN_OUT = f"""
id: head-fan-out
namespace: {{ns}}
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    concurrencyLimit: 0
    values: '{list(range(WIDTH))}'
    tasks:
      - id: on_io
        type: io.kestra.plugin.core.log.Log
        message: "child {{{{ taskrun.value }}}}"
        workerGroup:
          key: io
      - id: after
        type: io.kestra.plugin.core.debug.Return
        format: "{{{{ taskrun.value }}}}"
"""


def _deadlocks(sessions: Any, database: str) -> int:
    with transaction(sessions) as session:
        return int(
            session.execute(
                text("SELECT deadlocks FROM pg_stat_database WHERE datname = :d"), {"d": database}
            ).scalar_one()
        )


def test_fifty_children_on_two_workers_and_a_head_only_writer_share_one_chain_without_deadlock(
    stack: Stack, deploy_flow: Callable[[str], dict[str, Any]], unique_namespace: str
) -> None:
    deploy_flow(FAN_OUT)
    database = make_engine(stack.settings.database_url, pool_size=1)
    sessions = make_sessionmaker(database)
    name = database.url.database or ""
    stack.cluster.start_worker("control,io", name="head-second", concurrency=2)
    try:
        before = _deadlocks(sessions, name)
        execution_id = stack.run(unique_namespace, "head-fan-out")["id"]
        appended = 0
        stop = threading.Event()

        def ledger_like() -> None:
            # Locks only the head (no execution row), as llm_ledger.record's append does.
            nonlocal appended
            while not stop.is_set():
                with transaction(sessions) as session:
                    store.append_audit(
                        session, execution_id, actor="test", action="test.ledger", subject=None, payload={"n": appended}
                    )
                appended += 1
                time.sleep(0.01)

        writer = threading.Thread(target=ledger_like)
        writer.start()
        try:
            ended = stack.wait_for_state(execution_id, timeout_s=240)
        finally:
            stop.set()
            writer.join(timeout=30)
        assert ended["state"]["current"] == "SUCCESS", ended["state"]
        runs = ended["taskRunList"]
        assert (
            sum(1 for r in runs if r["taskId"] in ("on_io", "after") and r["state"]["current"] == "SUCCESS")
            == 2 * WIDTH
        )
        assert appended > 0
        with transaction(sessions) as session:
            [report] = verify_chains(session, [execution_id])
            events = store.audit_events(session, execution_id)
        assert report.broken is None, report
        assert sum(1 for e in events if e.action == "test.ledger") == appended
        time.sleep(1.5)  # PostgreSQL publishes a backend's statistics at most once a second
        assert _deadlocks(sessions, name) == before
    finally:
        stack.cluster.stop_worker("head-second")
        database.dispose()
