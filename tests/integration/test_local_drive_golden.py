"""Golden: a flow driven locally leaves the same task runs and audit trail as the same flow run by workers.

Each flow runs twice on one database: once submitted by an engine without a local runner to a real Celery
worker with local drive off (what Chorus did before local drive), once submitted by an engine with the
workers' LocalRunner to a worker with it on. Ids, dates and the claimant's name legitimately differ (a worker
claims as `worker:<host>:<pid>:<celery id>`, a local drive as `worker:local:<host>:<pid>`), so actors are
compared by their kind only; everything else is compared as is.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from orchestrator.core.states import TERMINAL
from orchestrator.engine import Engine
from orchestrator.store.tables import AuditEventRow, ExecutionRow, TaskRunRow
from tests.harness.cluster import Cluster
from tests.harness.engines import EngineFactory
from tests.harness.waiting import wait_until
from workers.attempts import LocalRunner

FLOWS = {
    "logs": """
id: logs
namespace: tests.golden
tasks:
  - {id: a, type: io.kestra.plugin.core.log.Log, message: one}
  - {id: b, type: io.kestra.plugin.core.log.Log, message: "{{ taskrun.attemptsCount }}"}
  - {id: c, type: io.kestra.plugin.core.debug.Return, format: "{{ flow.id }}"}
""",
    "branch": """
id: branch
namespace: tests.golden
inputs:
  - {id: go, type: BOOLEAN, defaults: true}
tasks:
  - id: choose
    type: io.kestra.plugin.core.flow.If
    condition: "{{ inputs.go }}"
    then:
      - {id: yes, type: io.kestra.plugin.core.debug.Return, format: "yes"}
    else:
      - {id: no, type: io.kestra.plugin.core.log.Log, message: "no"}
  - {id: after, type: io.kestra.plugin.core.log.Log, message: after}
""",
    "each": """
id: each
namespace: tests.golden
tasks:
  - id: loop
    type: io.kestra.plugin.core.flow.ForEach
    values: ["x", "y", "z"]
    tasks:
      - {id: say, type: io.kestra.plugin.core.debug.Return, format: "{{ taskrun.value }}"}
      - id: boom
        type: io.kestra.plugin.core.execution.Fail
        condition: "{{ taskrun.value == 'y' }}"
        errorMessage: "y fails"
    errors:
      - {id: caught, type: io.kestra.plugin.core.log.Log, message: caught}
errors:
  - {id: flow_errors, type: io.kestra.plugin.core.debug.Return, format: handled}
""",
    "mixed": """
id: mixed
namespace: tests.golden
tasks:
  - {id: before, type: io.kestra.plugin.core.log.Log, message: before}
  - {id: nap, type: io.kestra.plugin.core.flow.Sleep, duration: PT0.1S}
  - {id: after, type: io.kestra.plugin.core.debug.Return, format: after}
""",
    # A worker decides the If: with local drive on, it runs the chosen branch in that decision's transaction.
    "decided": """
id: decided
namespace: tests.golden
tasks:
  - {id: nap, type: io.kestra.plugin.core.flow.Sleep, duration: PT0.1S}
  - id: choose
    type: io.kestra.plugin.core.flow.If
    condition: "{{ true }}"
    then:
      - {id: yes, type: io.kestra.plugin.core.log.Log, message: "yes"}
      - {id: also, type: io.kestra.plugin.core.debug.Return, format: "also"}
  - {id: after, type: io.kestra.plugin.core.log.Log, message: after}
""",
    # A worker's join starts the `errors` phase: with local drive on, the worker runs it in that join's transaction.
    "late": """
id: late
namespace: tests.golden
tasks:
  - {id: nap, type: io.kestra.plugin.core.flow.Sleep, duration: PT0.1S}
  - {id: boom, type: io.kestra.plugin.core.execution.Fail, errorMessage: late failure}
errors:
  - {id: handled, type: io.kestra.plugin.core.log.Log, message: handled}
  - {id: noted, type: io.kestra.plugin.core.debug.Return, format: noted}
""",
    # A task on the io pool between control tasks: with local drive on, the io task run's finish runs `after` and
    # the end of the execution in its own transaction (what followed it in its chain).
    "hop": """
id: hop
namespace: tests.golden
tasks:
  - {id: before, type: io.kestra.plugin.core.log.Log, message: before}
  - {id: io, type: io.kestra.plugin.core.debug.Return, format: "{{ flow.id }}", workerGroup: {key: io}}
  - {id: after, type: io.kestra.plugin.core.log.Log, message: "{{ outputs.io.value }}"}
""",
    # The same when the io task fails: what followed it is skipped, and its finish's join runs `errors` there.
    "hop_fails": """
id: hop_fails
namespace: tests.golden
tasks:
  - {id: before, type: io.kestra.plugin.core.log.Log, message: before}
  - {id: io, type: io.kestra.plugin.core.execution.Fail, errorMessage: io fails, workerGroup: {key: io}}
  - {id: after, type: io.kestra.plugin.core.log.Log, message: never}
errors:
  - {id: handled, type: io.kestra.plugin.core.log.Log, message: handled}
""",
    # The join run by the failed io task run's finish starts `errors`, whose second task needs the io pool again:
    # the finish runs `handled`, and the rest of that phase replaces the links it took (Task.replace).
    "hop_fails_io": """
id: hop_fails_io
namespace: tests.golden
tasks:
  - {id: io, type: io.kestra.plugin.core.execution.Fail, errorMessage: io fails, workerGroup: {key: io}}
  - {id: after, type: io.kestra.plugin.core.log.Log, message: never}
errors:
  - {id: handled, type: io.kestra.plugin.core.log.Log, message: handled}
  - {id: again, type: io.kestra.plugin.core.debug.Return, format: again, workerGroup: {key: io}}
  - {id: last, type: io.kestra.plugin.core.log.Log, message: last}
""",
    # Each branch of a fan-out chains an io task and a Log: a chord counts each branch's last link, which stays a
    # message of its own (a finish takes no link a chord or a group waits for).
    "fanout_hop": """
id: fanout_hop
namespace: tests.golden
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: ["x", "y"]
    concurrencyLimit: 0
    tasks:
      - {id: io, type: io.kestra.plugin.core.debug.Return, format: "{{ taskrun.value }}", workerGroup: {key: io}}
      - {id: said, type: io.kestra.plugin.core.log.Log, message: "{{ outputs.io[taskrun.value].value }}"}
  - {id: after, type: io.kestra.plugin.core.log.Log, message: after}
""",
}


def _run_all(engine: Engine) -> dict[str, str]:
    ids = {name: engine.submit("tests.golden", name, inputs={}, actor="test").id for name in FLOWS}

    def ended() -> bool:
        with engine.sessions() as session:
            states = session.scalars(select(ExecutionRow.state).where(ExecutionRow.id.in_(ids.values())))
            return all(state in TERMINAL for state in states)

    wait_until(ended, timeout_s=60, message="every golden execution ended")
    return ids


_DATE = re.compile(r"^\d{4}-\d\d-\d\dT")


def _undated(value: Any) -> Any:
    """`value` with its dates (a Sleep's recorded end, say) replaced: they differ between any two runs."""
    if isinstance(value, str):
        return "<date>" if _DATE.match(value) else value
    if isinstance(value, dict):
        return {k: _undated(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_undated(v) for v in value]
    return value


def _actor_kind(actor: str) -> str:
    return actor.split(":", 1)[0]


def _record(engine: Engine, execution_id: str) -> dict[str, Any]:
    """What must match: the execution's state, each task run's story, and the audit trail's actions."""
    with engine.sessions() as session:
        execution = session.get(ExecutionRow, execution_id)
        assert execution is not None
        rows = list(session.scalars(select(TaskRunRow).where(TaskRunRow.execution_id == execution_id)))
        by_id = {row.id: row for row in rows}
        names = {row.id: (row.task_id, row.iteration) for row in rows}
        runs = sorted(
            (
                row.task_id,
                row.iteration,
                by_id[row.parent_id].task_id if row.parent_id else None,
                row.state,
                tuple(h["state"] for h in row.state_history),
                repr(row.outputs),
                len(row.attempts),
                tuple(a["state"]["current"] for a in row.attempts),
                repr(_undated(row.decision)),
            )
            for row in rows
        )
        audit = [
            (
                event.action,
                _actor_kind(event.actor),
                names.get(event.subject or ""),
                tuple(sorted(k for k in event.payload if k not in ("labels", "flow_revision"))),
            )
            for event in session.scalars(
                select(AuditEventRow).where(AuditEventRow.chain_key == execution_id).order_by(AuditEventRow.seq)
            )
        ]
        return {"state": execution.state, "outputs": execution.outputs, "runs": runs, "audit": audit}


@pytest.fixture
def worker_env(database_url: str, idle_broker_url: str) -> dict[str, str]:
    return {"CHORUS_DATABASE_URL": database_url, "CHORUS_BROKER_URL": idle_broker_url, "CHORUS_METRICS_PORT": "0"}


@pytest.fixture
def cluster(worker_env: dict[str, str]) -> Iterator[Cluster]:
    with Cluster(worker_env) as started:
        yield started


def test_local_drive_leaves_the_task_runs_and_audit_trail_workers_leave(
    database_url: str, idle_broker_url: str, engine_factory: EngineFactory, cluster: Cluster
) -> None:
    sent = engine_factory(database_url, broker_url=idle_broker_url)
    for source in FLOWS.values():
        sent.deploy_flow(source, actor="test")
    cluster.start_worker("control,io", name="before", concurrency=1, env={"CHORUS_LOCAL_DRIVE_MAX_RUNS": "0"})
    by_workers = _run_all(sent)
    cluster.stop_worker("before")

    local = engine_factory(
        database_url, broker_url=idle_broker_url, local_runner=LocalRunner(), local_drive_max_ms=60_000
    )
    cluster.start_worker("control,io", name="after", concurrency=1)
    by_drive = _run_all(local)

    for name in FLOWS:
        assert _record(local, by_drive[name]) == _record(sent, by_workers[name]), name
    # Where each leg ran them: the first leg's workers claimed every task run; the second leg's submit ran the
    # pure flows itself, and its worker ran the `errors` phase of `late` in the transaction of the join.
    assert _claimants(sent, by_workers["logs"]) == {"a": "worker", "b": "worker", "c": "worker"}
    assert _claimants(local, by_drive["logs"]) == {"a": "local", "b": "local", "c": "local"}
    assert _claimants(local, by_drive["decided"]) == {
        "nap": "worker",
        "choose": "worker",
        "yes": "local",
        "also": "local",
        "after": "worker",
    }
    assert _claimants(local, by_drive["hop"]) == {"before": "local", "io": "worker", "after": "local"}
    assert _claimants(local, by_drive["hop_fails"]) == {"before": "local", "io": "worker", "handled": "local"}
    assert _claimants(local, by_drive["hop_fails_io"]) == {
        "io": "worker",
        "handled": "local",
        "again": "worker",
        "last": "local",
    }
    assert _claimants(sent, by_workers["hop"]) == {"before": "worker", "io": "worker", "after": "worker"}
    assert _claimants(local, by_drive["late"]) == {
        "nap": "worker",
        "boom": "worker",
        "handled": "local",
        "noted": "local",
    }


def _claimants(engine: Engine, execution_id: str) -> dict[str, str]:
    """Who claimed each task run: a Celery worker's task, or a local drive (`worker:local:...`)."""
    with engine.sessions() as session:
        claims = session.scalars(
            select(AuditEventRow)
            .where(AuditEventRow.chain_key == execution_id, AuditEventRow.action == "task_run.running")
            .order_by(AuditEventRow.seq)
        )
        seen: dict[str, str] = {}
        for event in claims:
            seen.setdefault(
                str(event.payload["task_id"]), "local" if event.actor.startswith("worker:local:") else "worker"
            )
        return seen
