"""execution.Count, execution.PurgeExecutions, log.PurgeLogs, metric.PurgeMetrics, kv.PurgeKV, flow.PurgeFlows and
storage.PurgeStorage, over `orchestrator.engine.housekeeping`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from orchestrator.core.errors import TaskFailed
from orchestrator.core.expressions import render
from orchestrator.engine.audit_trail import ApiAction
from orchestrator.engine.housekeeping import Housekeeping
from workers.context import TaskContext


def _keeper(ctx: TaskContext) -> Housekeeping:
    engine = ctx.engine
    return Housekeeping(engine.settings.tenant, engine.sessions, engine.settings.data_dir)


def _moment(ctx: TaskContext, name: str) -> datetime | None:
    raw = ctx.properties.get(name)
    if raw is None:
        return None
    text = str(ctx.render(raw))
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as e:
        raise TaskFailed(f"{name}: expected an ISO-8601 date-time with offset, got {text!r}", retryable=False) from e
    if moment.tzinfo is None:
        raise TaskFailed(f"{name}: the date-time needs an offset, got {text!r}", retryable=False)
    return moment


def _audit(ctx: TaskContext, action: str, namespace: str | None) -> ApiAction:
    at = ctx.claimed.coordinates
    return ApiAction(
        actor=f"task:{at.execution_id}/{at.task_id}",
        client="worker",
        action=action,
        outcome="success",
        status=0,
        namespace=namespace,
        detail={"execution_id": at.execution_id, "task_run_id": at.task_run_id},
    )


def _text(ctx: TaskContext, name: str) -> str | None:
    raw = ctx.properties.get(name)
    return None if raw is None else str(ctx.render(raw))


def run_count(ctx: TaskContext) -> dict[str, Any] | None:
    flows_raw = ctx.render(ctx.properties.get("flows"))
    namespaces = ctx.render(ctx.properties.get("namespaces"))
    if flows_raw is None and namespaces is None:
        raise TaskFailed("You must provide a list of flows or namespaces", retryable=False)
    flows = [(str(f.get("namespace")), str(f.get("flowId"))) for f in flows_raw or [] if isinstance(f, dict)]
    now = datetime.now(UTC)
    counts = _keeper(ctx).execution_counts(
        flows=flows,
        namespaces=[str(n) for n in namespaces or []],
        states=ctx.render(ctx.properties.get("states")),
        start=_moment(ctx, "startDate") or now - timedelta(days=30),
        end=_moment(ctx, "endDate") or now,
    )
    expression = str(ctx.properties.get("expression"))
    results = [
        {"namespace": c.namespace, "flowId": c.flow_id, "count": c.count}
        for c in counts
        if render(expression, {**ctx.claimed.variables, "count": c.count}, functions=ctx.functions).strip() == "true"
    ]
    return {"results": results, "total": sum(r["count"] for r in results)}


def _flag(ctx: TaskContext, name: str) -> bool:
    raw = ctx.properties.get(name)
    return True if raw is None else str(ctx.render(raw)).lower() == "true"


def run_purge_executions(ctx: TaskContext) -> dict[str, Any] | None:
    end = _moment(ctx, "endDate")
    if end is None:
        raise TaskFailed("endDate is required", retryable=False)
    namespace = _text(ctx, "namespace")
    result = _keeper(ctx).purge_executions(
        namespace=namespace,
        flow_id=_text(ctx, "flowId"),
        start=_moment(ctx, "startDate"),
        end=end,
        states=ctx.render(ctx.properties.get("states")),
        keep=ctx.claimed.coordinates.execution_id,
        purge_execution=_flag(ctx, "purgeExecution"),
        purge_log=_flag(ctx, "purgeLog"),
        purge_storage=_flag(ctx, "purgeStorage"),
        purge_metric=_flag(ctx, "purgeMetric"),
        audit=_audit(ctx, "execution.purge", namespace),
    )
    return {
        "executionsCount": result.executions,
        "logsCount": result.logs,
        "storagesCount": result.storages,
        "metricsCount": result.metrics,
    }


def run_purge_logs(ctx: TaskContext) -> dict[str, Any] | None:
    end = _moment(ctx, "endDate")
    if end is None:
        raise TaskFailed("endDate is required", retryable=False)
    namespace = _text(ctx, "namespace")
    levels = ctx.render(ctx.properties.get("logLevels"))
    count = _keeper(ctx).purge_logs(
        namespace=namespace,
        flow_id=_text(ctx, "flowId"),
        levels=[str(level).upper().replace("WARNING", "WARN") for level in levels] if levels else None,
        start=_moment(ctx, "startDate"),
        end=end,
        audit=_audit(ctx, "log.purge", namespace),
    )
    return {"count": count}


def run_purge_metrics(ctx: TaskContext) -> dict[str, Any] | None:
    """Kestra 2's metric.PurgeMetrics (core/src/main/java/io/kestra/plugin/core/metric/PurgeMetrics.java#run)."""
    namespace, flow_id = _text(ctx, "namespace"), _text(ctx, "flowId")
    if namespace is None and flow_id is not None:
        raise TaskFailed("Property `namespace` is required when `flowId` is set.", retryable=False)  # Kestra's message
    end = _moment(ctx, "endDate")
    if end is None:
        raise TaskFailed("endDate is required", retryable=False)
    count = _keeper(ctx).purge_metrics(
        namespace=namespace,
        flow_id=flow_id,
        start=_moment(ctx, "startDate"),
        end=end,
        audit=_audit(ctx, "metric.purge", namespace),
    )
    return {"count": count}


def run_purge_kv(ctx: TaskContext) -> dict[str, Any] | None:
    namespaces = ctx.render(ctx.properties.get("namespaces"))
    pattern = _text(ctx, "namespacePattern")
    if namespaces is not None and pattern is not None:
        raise TaskFailed("namespaces and namespacePattern cannot be used together", retryable=False)
    behavior = ctx.render(ctx.properties.get("behavior")) or {}
    expired_only = behavior.get("expiredOnly", True) if isinstance(behavior, dict) else True
    if ctx.properties.get("expiredOnly") is not None:  # deprecated, and wins over `behavior` as in Kestra
        expired_only = str(ctx.render(ctx.properties["expiredOnly"])).lower() == "true"
    size = _keeper(ctx).purge_kv(
        namespaces=[str(n) for n in namespaces] if namespaces is not None else None,
        namespace_pattern=pattern,
        include_children=_flag(ctx, "includeChildNamespaces"),
        key_pattern=_text(ctx, "keyPattern"),
        expired_only=str(expired_only).lower() == "true",
        audit=_audit(ctx, "kv.purge", None),
    )
    ctx.log("INFO", f"purged {size} keys")
    return {"size": size}


def run_purge_flows(ctx: TaskContext) -> dict[str, Any] | None:
    namespaces = ctx.render(ctx.properties.get("namespaces"))
    pattern = _text(ctx, "namespacePattern")
    if namespaces and pattern:
        # Kestra's message (PurgeTask.findNamespaces)
        raise TaskFailed(
            "Properties `namespaces` and `namespacePattern` can't be used at the same time — use one or the other.",
            retryable=False,
        )
    behavior = ctx.render(ctx.properties.get("behavior")) or {}
    behavior = behavior if isinstance(behavior, dict) else {}
    before = behavior.get("before")
    keep = behavior.get("keepAmount")
    if before is None and keep is None:
        keep = 1  # Kestra's default behaviour: Version with keepAmount 1
    try:
        keep_amount = int(keep) if keep is not None else None
        moment = datetime.fromisoformat(str(before).replace("Z", "+00:00")) if before is not None else None
    except ValueError as e:
        raise TaskFailed(f"behavior: {e}", retryable=False) from e
    if moment is not None and moment.tzinfo is None:
        raise TaskFailed(f"behavior.before: an ISO-8601 instant is needed, got {before!r}", retryable=False)
    size = _keeper(ctx).purge_flow_revisions(
        namespaces=[str(n) for n in namespaces] if namespaces else None,
        namespace_pattern=pattern,
        include_children=_flag(ctx, "includeChildNamespaces"),
        flow_pattern=_text(ctx, "flowPattern"),
        keep_amount=keep_amount,
        before=moment,
        audit=_audit(ctx, "flow.purge", None),
    )
    ctx.log("INFO", f"purged {size} flow revisions")
    return {"size": size}


def run_purge_storage(ctx: TaskContext) -> dict[str, Any] | None:
    end = _moment(ctx, "endDate")
    if end is None:
        raise TaskFailed("endDate is required", retryable=False)
    namespace, flow_id = _text(ctx, "namespace"), _text(ctx, "flowId")
    if flow_id is not None and namespace is None:
        raise TaskFailed("'namespace' is required when 'flowId' is set.", retryable=False)  # Kestra's message
    raw_dry_run = ctx.properties.get("dryRun")
    dry_run = True if raw_dry_run is None else str(ctx.render(raw_dry_run)).lower() == "true"
    ctx.log(
        "INFO", f"Starting PurgeStorage (dryRun={str(dry_run).lower()}) scope=[namespace={namespace}, flowId={flow_id}]"
    )
    result = _keeper(ctx).purge_storage(
        namespace=namespace,
        flow_id=flow_id,
        start=_moment(ctx, "startDate"),
        end=end,
        dry_run=dry_run,
        audit=_audit(ctx, "storage.purge", namespace),
    )
    return {"scannedCount": result.scanned, "purgedCount": result.purged, "deletedFilesCount": result.deleted_files}


HANDLERS = {
    "PurgeFlows": run_purge_flows,
    "PurgeStorage": run_purge_storage,
    "PurgeKV": run_purge_kv,
    "Count": run_count,
    "PurgeExecutions": run_purge_executions,
    "PurgeLogs": run_purge_logs,
    "PurgeMetrics": run_purge_metrics,
}
