"""execution.Count, execution.PurgeExecutions, log.PurgeLogs, kv.PurgeKV and flow.PurgeFlows against a real database."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from orchestrator import internal_storage as storage
from orchestrator import store
from orchestrator.core.errors import FlowInvalid
from orchestrator.core.ids import new_id
from orchestrator.core.parse import parse_flow
from orchestrator.engine import Engine
from orchestrator.store import kv as store_kv
from orchestrator.store import metric_entries
from orchestrator.store.database import transaction
from orchestrator.store.tables import ExecutionRow, FlowRevisionRow, LogLineRow
from tests.integration.workers.conftest import Runner, one_task_flow


def _ended(engine: Engine, namespace: str, flow_id: str, state: str, *, logs: int = 0) -> str:
    now = datetime.now(UTC) - timedelta(minutes=5)
    row = ExecutionRow(
        id=new_id(),
        tenant="main",
        namespace=namespace,
        flow_id=flow_id,
        flow_revision=1,
        state=state,
        state_history=[{"state": state, "date": store.iso(now)}],
        inputs={},
        outputs=None,
        labels=[],
        trigger=None,
        parent_execution_id=None,
        parent_task_run_id=None,
        original_id=None,
        restarts=0,
        created_at=now,
        updated_at=now,
        ended_at=now,
    )
    with transaction(engine.sessions) as session:
        store.create_execution(session, row, actor="test", payload={})
        for _ in range(logs):
            session.add(
                LogLineRow(execution_id=row.id, namespace=namespace, flow_id=flow_id, level="INFO", message="m", at=now)
            )
    return row.id


def _in(namespace: str, task: str) -> str:
    return one_task_flow(task).replace("namespace: tests.workers", f"namespace: {namespace}")


def test_count_counts_per_flow_and_keeps_those_the_expression_accepts(run_task: Runner, worker_engine: Engine) -> None:
    namespace = f"tests.count{uuid.uuid4().hex[:8]}"
    for state in ("SUCCESS", "SUCCESS", "FAILED"):
        _ended(worker_engine, namespace, "busy", state)
    _ended(worker_engine, namespace, "quiet", "SUCCESS")
    task = (
        "    type: io.kestra.plugin.core.execution.Count\n"
        f"    flows:\n      - namespace: {namespace}\n        flowId: busy\n"
        f"      - namespace: {namespace}\n        flowId: never\n"
        f"    namespaces: [{namespace}]\n"
        "    states: [SUCCESS]\n"
        '    expression: "{{ count >= 1 }}"\n'
    )

    outcome = run_task(_in("tests.other", task), "t")

    assert outcome.outputs is not None, outcome.error
    assert outcome.outputs == {
        "results": [
            {"namespace": namespace, "flowId": "busy", "count": 2},
            {"namespace": namespace, "flowId": "quiet", "count": 1},
        ],
        "total": 3,
    }


def test_count_without_flows_or_namespaces_fails(run_task: Runner) -> None:
    outcome = run_task(one_task_flow("    type: io.kestra.plugin.core.execution.Count\n    expression: 'true'"), "t")

    assert outcome.error == "You must provide a list of flows or namespaces"


def test_purge_executions_removes_ended_executions_and_their_logs(run_task: Runner, worker_engine: Engine) -> None:
    namespace = f"tests.purge{uuid.uuid4().hex[:8]}"
    gone = _ended(worker_engine, namespace, "f", "SUCCESS", logs=2)
    kept = _ended(worker_engine, namespace, "f", "FAILED", logs=1)
    end = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    task = (
        "    type: io.kestra.plugin.core.execution.PurgeExecutions\n"
        f'    namespace: {namespace}\n    endDate: "{end}"\n    states: [SUCCESS]\n'
    )

    outcome = run_task(_in(namespace, task), "t")

    assert outcome.outputs is not None, outcome.error
    assert outcome.outputs["executionsCount"] == 1
    assert outcome.outputs["logsCount"] == 2
    with worker_engine.sessions() as session:
        assert store.get_execution(session, gone) is None
        assert store.get_execution(session, kept) is not None


def test_purge_logs_deletes_by_namespace_and_level(run_task: Runner, worker_engine: Engine) -> None:
    namespace = f"tests.purgelogs{uuid.uuid4().hex[:8]}"
    execution_id = _ended(worker_engine, namespace, "f", "SUCCESS", logs=3)
    end = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    task = (
        "    type: io.kestra.plugin.core.log.PurgeLogs\n"
        f'    namespace: {namespace}\n    endDate: "{end}"\n    logLevels: [INFO]\n'
    )

    outcome = run_task(one_task_flow(task), "t")

    assert outcome.outputs == {"count": 3}
    with worker_engine.sessions() as session:
        assert list(store.log_lines_of(session, execution_id)) == []


def test_purge_logs_needs_an_end_date_with_an_offset(run_task: Runner) -> None:
    task = "    type: io.kestra.plugin.core.log.PurgeLogs\n    endDate: '2026-01-01T00:00:00'\n"

    outcome = run_task(one_task_flow(task), "t")

    assert outcome.error == "endDate: the date-time needs an offset, got '2026-01-01T00:00:00'"


def _kv(engine: Engine, namespace: str, key: str, *, expired: bool) -> None:
    now = store.utcnow()
    with transaction(engine.sessions) as session:
        store_kv.upsert_entry(
            session,
            "main",
            namespace,
            key,
            value_type="STRING",
            value="v",
            description=None,
            expires_at=now - timedelta(seconds=1) if expired else None,
            now=now,
        )


def test_purge_kv_removes_expired_keys_of_a_namespace_and_its_children(run_task: Runner, worker_engine: Engine) -> None:
    namespace = f"tests.kv{uuid.uuid4().hex[:8]}"
    _kv(worker_engine, namespace, "old", expired=True)
    _kv(worker_engine, f"{namespace}.child", "old", expired=True)
    _kv(worker_engine, namespace, "live", expired=False)
    task = f"    type: io.kestra.plugin.core.kv.PurgeKV\n    namespaces: [{namespace}]\n"

    outcome = run_task(one_task_flow(task), "t")
    everything = run_task(one_task_flow(task + "    expiredOnly: false\n    keyPattern: 'l*'\n"), "t")

    assert outcome.outputs == {"size": 2}
    assert everything.outputs == {"size": 1}


def test_purge_kv_refuses_namespaces_with_a_namespace_pattern(run_task: Runner) -> None:
    task = "    type: io.kestra.plugin.core.kv.PurgeKV\n    namespaces: [a]\n    namespacePattern: 'a*'\n"

    outcome = run_task(one_task_flow(task), "t")

    assert outcome.error == "namespaces and namespacePattern cannot be used together"


def _revisions(engine: Engine, namespace: str, flow_id: str, count: int) -> None:
    with transaction(engine.sessions) as session:
        for n in range(count):
            store.save_flow_revision(session, "main", namespace, flow_id, f"id: {flow_id}\n# {n}\n", {})


def _kept(engine: Engine, namespace: str, flow_id: str) -> list[int]:
    with transaction(engine.sessions) as session:
        rows = session.scalars(
            select(FlowRevisionRow.revision).where(
                FlowRevisionRow.namespace == namespace, FlowRevisionRow.flow_id == flow_id
            )
        )
        return sorted(rows)


def test_purge_flows_keeps_the_latest_revision_of_each_matching_flow_by_default(
    run_task: Runner, worker_engine: Engine
) -> None:
    namespace = f"tests.pf{uuid.uuid4().hex[:8]}"
    _revisions(worker_engine, namespace, "old_deprecated", 4)
    _revisions(worker_engine, f"{namespace}.child", "other_deprecated", 2)
    _revisions(worker_engine, namespace, "kept", 3)  # outside flowPattern
    task = (
        f"    type: io.kestra.plugin.core.flow.PurgeFlows\n    namespaces: [{namespace}]\n"
        "    flowPattern: '*_deprecated'\n"
    )

    outcome = run_task(one_task_flow(task), "t")

    assert outcome.outputs == {"size": 4}  # 3 + 1: children are included by default
    assert _kept(worker_engine, namespace, "old_deprecated") == [4]
    assert _kept(worker_engine, f"{namespace}.child", "other_deprecated") == [2]
    assert _kept(worker_engine, namespace, "kept") == [1, 2, 3]


def test_purge_flows_keep_amount_keeps_that_many_of_the_newest(run_task: Runner, worker_engine: Engine) -> None:
    namespace = f"tests.pf{uuid.uuid4().hex[:8]}"
    _revisions(worker_engine, namespace, "f", 5)
    task = (
        f"    type: io.kestra.plugin.core.flow.PurgeFlows\n    namespaces: [{namespace}]\n"
        "    includeChildNamespaces: false\n    behavior:\n      type: version\n      keepAmount: 2\n"
    )

    outcome = run_task(one_task_flow(task), "t")

    assert outcome.outputs == {"size": 3}
    assert _kept(worker_engine, namespace, "f") == [4, 5]


def test_purge_flows_refuses_namespaces_with_a_namespace_pattern(run_task: Runner) -> None:
    task = "    type: io.kestra.plugin.core.flow.PurgeFlows\n    namespaces: [a]\n    namespacePattern: 'a*'\n"

    outcome = run_task(one_task_flow(task), "t")

    assert outcome.error is not None and "can't be used at the same time" in outcome.error


def test_purge_flows_refuses_both_before_and_keep_amount_at_deploy() -> None:
    source = one_task_flow(
        "    type: io.kestra.plugin.core.flow.PurgeFlows\n    behavior:\n"
        "      keepAmount: 1\n      before: '2026-01-01T00:00:00Z'\n"
    )

    with pytest.raises(FlowInvalid) as caught:
        parse_flow(source)

    assert any("Cannot set both 'before' and 'keepAmount'" in e.message for e in caught.value.errors)


def _execution_file(engine: Engine, namespace: str, flow_id: str, name: str, *, age_days: int) -> Path:
    execution = new_id()
    uri = storage.write(
        engine.settings.data_dir,
        storage.execution_prefix(namespace, flow_id, execution) / name,
        b"data",
    )
    path = storage.local_path(engine.settings.data_dir, uri)
    stamp = (datetime.now(UTC) - timedelta(days=age_days)).timestamp()
    os.utime(path, (stamp, stamp))
    return path


def test_purge_storage_counts_without_deleting_by_default_then_deletes_old_files(
    run_task: Runner, worker_engine: Engine
) -> None:
    namespace = f"tests.ps{uuid.uuid4().hex[:8]}"
    old = _execution_file(worker_engine, namespace, "f", "old.txt", age_days=10)
    old_child = _execution_file(worker_engine, f"{namespace}.team", "g", "old.txt", age_days=10)
    recent = _execution_file(worker_engine, namespace, "f", "new.txt", age_days=0)
    cutoff = (datetime.now(UTC) - timedelta(days=7)).isoformat()
    task = (
        f"    type: io.kestra.plugin.core.storage.PurgeStorage\n    namespace: {namespace}\n    endDate: '{cutoff}'\n"
    )

    preview = run_task(one_task_flow(task), "t")
    assert preview.outputs == {"scannedCount": 3, "purgedCount": 2, "deletedFilesCount": 0}
    assert old.exists() and old_child.exists()

    done = run_task(one_task_flow(task + "    dryRun: false\n"), "t")

    assert done.outputs == {"scannedCount": 3, "purgedCount": 2, "deletedFilesCount": 2}
    assert not old.exists() and not old_child.exists()  # sub-namespaces are reached too
    assert recent.exists()


def test_purge_storage_of_one_flow_needs_its_namespace(run_task: Runner) -> None:
    task = "    type: io.kestra.plugin.core.storage.PurgeStorage\n    flowId: f\n    endDate: '2026-01-01T00:00:00Z'\n"

    outcome = run_task(one_task_flow(task), "t")

    assert outcome.error == "'namespace' is required when 'flowId' is set."


def _metric(engine: Engine, namespace: str, flow_id: str, execution_id: str, name: str, age: timedelta) -> None:
    with transaction(engine.sessions) as session:
        metric_entries.insert_metrics(
            session,
            [
                metric_entries.MetricEntry(
                    tenant="main",
                    namespace=namespace,
                    flow_id=flow_id,
                    execution_id=execution_id,
                    task_id="task-1",
                    task_run_id=new_id(),
                    attempt=1,
                    type="counter",
                    name=name,
                    value=1.0,
                    tags={},
                    at=datetime.now(UTC) - age,
                )
            ],
        )


def _purge_metrics(**properties: str) -> str:
    lines = "".join(f'    {key}: "{value}"\n' for key, value in properties.items())
    return "    type: io.kestra.plugin.core.metric.PurgeMetrics\n" + lines


def test_purge_metrics_of_one_flow_deletes_only_those_in_the_window(run_task: Runner, worker_engine: Engine) -> None:
    # PurgeMetricsTest#run_with_full_arguments: one metric 10 days old, one 1 day old, window [-15d, -5d]
    namespace = f"purge.metric{uuid.uuid4().hex[:8]}"
    _metric(worker_engine, namespace, "purge-metric-flow", "exec-1", "m1", timedelta(days=10))
    _metric(worker_engine, namespace, "purge-metric-flow", "exec-2", "m2", timedelta(days=1))
    _metric(worker_engine, namespace, "other-flow", "exec-3", "m3", timedelta(days=10))
    now = datetime.now(UTC)
    task = _purge_metrics(
        namespace=namespace,
        flowId="purge-metric-flow",
        startDate=(now - timedelta(days=15)).isoformat(),
        endDate=(now - timedelta(days=5)).isoformat(),
    )

    outcome = run_task(_in(namespace, task), "t")

    assert outcome.outputs == {"count": 1}, outcome.error
    with worker_engine.sessions() as session:
        assert [m.name for m in metric_entries.metrics_of(session, "exec-2")] == ["m2"]
        assert [m.name for m in metric_entries.metrics_of(session, "exec-3")] == ["m3"]


def test_purge_metrics_by_namespace_prefix_or_everywhere(run_task: Runner, worker_engine: Engine) -> None:
    # PurgeMetricsTest#run_with_no_namespace: without namespace every namespace is purged up to endDate
    namespace = f"purge.prefix{uuid.uuid4().hex[:8]}"
    _metric(worker_engine, f"{namespace}.child", "f", "exec-child", "m", timedelta(days=10))
    _metric(worker_engine, f"{namespace}x", "f", "exec-sibling", "m", timedelta(days=10))
    end = (datetime.now(UTC) - timedelta(days=5)).isoformat()

    by_prefix = run_task(_in("tests.other", _purge_metrics(namespace=f"{namespace}.", endDate=end)), "t")
    everywhere = run_task(_in("tests.other", _purge_metrics(endDate=end)), "t")

    assert by_prefix.outputs == {"count": 1}, by_prefix.error
    assert everywhere.outputs is not None and everywhere.outputs["count"] >= 1, everywhere.error
    with worker_engine.sessions() as session:
        assert metric_entries.metrics_of(session, "exec-sibling") == []


def test_purge_metrics_of_a_flow_needs_its_namespace(run_task: Runner) -> None:
    # PurgeMetricsTest#run_with_flowId_without_namespace_should_throw
    task = _purge_metrics(flowId="flow-without-ns", endDate=datetime.now(UTC).isoformat())

    outcome = run_task(one_task_flow(task), "t")

    assert outcome.error == "Property `namespace` is required when `flowId` is set."


def test_purge_metrics_with_nothing_to_purge_counts_zero(run_task: Runner) -> None:
    # PurgeMetricsTest#run_with_no_matching_metrics
    task = _purge_metrics(namespace="non.existent.namespace", endDate=datetime.now(UTC).isoformat())

    outcome = run_task(one_task_flow(task), "t")

    assert outcome.outputs == {"count": 0}, outcome.error


def test_purge_executions_purges_their_metrics_unless_told_not_to(run_task: Runner, worker_engine: Engine) -> None:
    namespace = f"tests.purgem{uuid.uuid4().hex[:8]}"
    first = _ended(worker_engine, namespace, "f", "SUCCESS")
    _metric(worker_engine, namespace, "f", first, "m", timedelta(minutes=5))
    end = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    task = (
        f'    type: io.kestra.plugin.core.execution.PurgeExecutions\n    namespace: {namespace}\n    endDate: "{end}"\n'
    )

    kept = run_task(_in(namespace, task + "    purgeExecution: false\n    purgeMetric: false\n"), "t")
    purged = run_task(_in(namespace, task), "t")

    assert kept.outputs is not None and kept.outputs["metricsCount"] == 0, kept.error
    assert purged.outputs is not None and purged.outputs["metricsCount"] == 1, purged.error
    with worker_engine.sessions() as session:
        assert metric_entries.metrics_of(session, first) == []
