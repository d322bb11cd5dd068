"""Queries and purges behind Kestra's execution.Count, execution.PurgeExecutions, log.PurgeLogs and kv.PurgeKV.

Each operation is one transaction over the executions, task runs and log lines tables. Purges are audited
(the audit trail itself is append-only and keeps the history of what was purged).
"""

from __future__ import annotations

import fnmatch
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from orchestrator import internal_storage as storage
from orchestrator import store
from orchestrator.core.errors import ChorusError
from orchestrator.core.states import State
from orchestrator.engine.audit_trail import ApiAction, record
from orchestrator.store import housekeeping as store_housekeeping
from orchestrator.store import kv as store_kv
from orchestrator.store import metric_entries
from orchestrator.store.database import Session, read_only, sessionmaker, transaction
from orchestrator.store.tables import FlowRevisionRow


class ExecutionsNotDeletable(ChorusError):
    """Raised when executions asked for deletion are missing or still live; `refused` maps each id to why.

    A 400, as Kestra answers its "invalid bulk delete".
    """

    def __init__(self, refused: dict[str, str]) -> None:
        self.refused = refused
        self.path = "executionId"
        listed = ", ".join(f"{eid}: {why}" for eid, why in sorted(refused.items())[:20])
        super().__init__(
            f"invalid delete: {len(refused)} execution(s) cannot be deleted ({listed}); nothing was deleted,"
            " and a live execution must be killed first"
        )


@dataclass(frozen=True)
class ExecutionCount:
    namespace: str
    flow_id: str
    count: int


@dataclass(frozen=True)
class PurgeResult:
    executions: int
    logs: int
    storages: int
    metrics: int = 0


@dataclass(frozen=True)
class StoragePurge:
    """What PurgeStorage saw: execution subtrees scanned, those with files in the window, files deleted."""

    scanned: int
    purged: int
    deleted_files: int


class Housekeeping:
    """Counts and purges of executions and logs, for the tasks that do them."""

    def __init__(self, tenant: str, sessions: sessionmaker[Session], data_dir: Path) -> None:
        self.tenant = tenant
        self.sessions = sessions
        self.data_dir = data_dir

    def execution_counts(
        self,
        *,
        flows: Sequence[tuple[str, str]],
        namespaces: Sequence[str],
        states: Sequence[str] | None,
        start: datetime,
        end: datetime,
    ) -> list[ExecutionCount]:
        """Executions started in [start, end] per flow, for the listed flows (0 when none) and namespaces."""
        with read_only(self.sessions) as session:
            found = store_housekeeping.execution_counts(
                session, self.tenant, flows=flows, namespaces=namespaces, states=states, start=start, end=end
            )
        # As Kestra's repository: every listed flow appears, with 0 when it has no execution.
        listed = [ExecutionCount(ns, fid, found.pop((ns, fid), 0)) for ns, fid in flows]
        return listed + [ExecutionCount(ns, fid, n) for (ns, fid), n in sorted(found.items())]

    def purge_executions(
        self,
        *,
        namespace: str | None,
        flow_id: str | None,
        start: datetime | None,
        end: datetime,
        states: Sequence[str] | None,
        keep: str,
        purge_execution: bool,
        purge_log: bool,
        purge_storage: bool,
        audit: ApiAction,
        purge_metric: bool = False,
    ) -> PurgeResult:
        """Purge ended executions started in [start, end] (never `keep`, the purging one, nor a live one)."""
        logs = storages = metrics = 0
        with transaction(self.sessions) as session:
            rows = store_housekeeping.lock_purgeable_executions(
                session,
                self.tenant,
                namespace=namespace,
                flow_id=flow_id,
                start=start,
                end=end,
                states=states,
                keep=keep,
            )
            ids = [row.id for row in rows]
            if ids and purge_log:
                logs = store_housekeeping.delete_log_lines_of(session, ids)
            if ids and purge_metric:
                metrics = metric_entries.delete_metrics_of(session, ids)
            if ids and purge_execution:
                store_housekeeping.delete_executions(session, ids)
            record(session, self.tenant, _detailed(audit, {"executions": ids, "logs": logs, "metrics": metrics}))
        if purge_storage:
            for row in rows:
                prefix = storage.execution_prefix(row.namespace, row.flow_id, row.id)
                folder = self.data_dir / "storage" / prefix.relative_to("/")
                if folder.is_dir():
                    storages += sum(1 for p in folder.rglob("*") if p.is_file())
                    shutil.rmtree(folder, ignore_errors=True)
        return PurgeResult(len(ids) if purge_execution else 0, logs, storages, metrics)

    def delete_executions(
        self, execution_ids: Sequence[str], *, delete_logs: bool, delete_storage: bool, audit: ApiAction
    ) -> list[str]:
        """Delete these ended executions (Kestra's DELETE /executions): rows, task runs, logs, storage files.

        All or nothing: when one is missing or still live, nothing is deleted and `ExecutionsNotDeletable`
        names each of them (deleting a live execution would leave its queued work pointing at nothing).
        """
        wanted = list(dict.fromkeys(execution_ids))
        with transaction(self.sessions) as session:
            rows = store_housekeeping.lock_executions(session, self.tenant, wanted)
            found = {row.id: row for row in rows}
            refused = {
                eid: ("execution not found" if eid not in found else f"execution is not ended ({found[eid].state})")
                for eid in wanted
                if eid not in found or not State(found[eid].state).is_terminal
            }
            if refused:
                raise ExecutionsNotDeletable(refused)
            logs = store_housekeeping.delete_log_lines_of(session, wanted) if wanted and delete_logs else 0
            if wanted:
                store_housekeeping.delete_executions(session, wanted)
            record(session, self.tenant, _detailed(audit, {"executions": wanted, "logs": logs}))
        if delete_storage:
            for row in rows:
                prefix = storage.execution_prefix(row.namespace, row.flow_id, row.id)
                shutil.rmtree(self.data_dir / "storage" / prefix.relative_to("/"), ignore_errors=True)
        return wanted

    def purge_kv(
        self,
        *,
        namespaces: Sequence[str] | None,
        namespace_pattern: str | None,
        include_children: bool,
        key_pattern: str | None,
        expired_only: bool,
        audit: ApiAction,
    ) -> int:
        """Delete KV entries (only expired ones with `expired_only`) of the matching namespaces and keys."""
        now = store.utcnow()
        with transaction(self.sessions) as session:
            rows = store_kv.all_entries(session, self.tenant)
            doomed = [
                row
                for row in rows
                if _matches_namespace(row.namespace, namespaces, namespace_pattern, include_children)
                and (key_pattern is None or fnmatch.fnmatchcase(row.key, key_pattern))
                and (not expired_only or (row.expires_at is not None and row.expires_at <= now))
            ]
            for row in doomed:
                store_kv.delete_entry(session, self.tenant, row.namespace, row.key)
            purged = [f"{row.namespace}/{row.key}" for row in doomed]
            record(session, self.tenant, _detailed(audit, {"purged": purged}))
        return len(doomed)

    def purge_flow_revisions(
        self,
        *,
        namespaces: Sequence[str] | None,
        namespace_pattern: str | None,
        include_children: bool,
        flow_pattern: str | None,
        keep_amount: int | None,
        before: datetime | None,
        audit: ApiAction,
    ) -> int:
        """Kestra 2's PurgeFlows with its `version` behaviour: delete old revisions of the matching flows.

        The newest revision always stays; `keepAmount` keeps that many of the newest, `before` deletes those
        saved at or before it, neither deletes every older one. A revision an unfinished execution runs on
        stays too: Chorus reads an execution's own revision as it goes, where Kestra keeps a copy in memory.
        """
        with transaction(self.sessions) as session:
            in_use = store_housekeeping.revisions_in_use(session, self.tenant)
            purged: dict[str, list[int]] = {}
            for (namespace, flow_id), revisions in store_housekeeping.flow_revisions(session, self.tenant).items():
                if not _prefix_match(namespace, namespaces, namespace_pattern, include_children):
                    continue
                if flow_pattern is not None and not fnmatch.fnmatchcase(flow_id, flow_pattern):
                    continue
                doomed = [r.revision for r in _revisions_to_purge(revisions, keep_amount, before)]
                doomed = [r for r in doomed if (namespace, flow_id, r) not in in_use]
                if doomed:
                    store_housekeeping.delete_flow_revisions(session, self.tenant, namespace, flow_id, doomed)
                    purged[f"{namespace}.{flow_id}"] = doomed
            record(session, self.tenant, _detailed(audit, {"revisions": purged}))
        return sum(len(r) for r in purged.values())

    def purge_storage(
        self,
        *,
        namespace: str | None,
        flow_id: str | None,
        start: datetime | None,
        end: datetime,
        dry_run: bool,
        audit: ApiAction,
    ) -> StoragePurge:
        """Kestra 2's PurgeStorage: the execution files last modified in [start, end] under `namespace` (and its
        sub-namespaces) or one flow, deleted unless `dry_run`; counted per execution subtree as Kestra does."""
        root = self.data_dir / "storage"
        base = root.joinpath(*namespace.split(".")) if namespace else root
        scanned = purged = deleted = 0
        for executions in sorted(base.rglob("executions")) if base.is_dir() else []:
            flow_dir = executions.parent
            if flow_id is not None and (
                flow_dir.name != storage.slug(flow_id) or flow_dir.parent != base  # one flow: its own namespace
            ):
                continue
            for subtree in sorted(p for p in executions.iterdir() if p.is_dir()):
                scanned += 1
                files = [f for f in subtree.rglob("*") if f.is_file() and _modified_in(f, start, end)]
                if not files:
                    continue
                purged += 1
                if not dry_run:
                    for file in files:
                        file.unlink(missing_ok=True)
                    deleted += len(files)
        with transaction(self.sessions) as session:
            detail: dict[str, object] = {"scanned": scanned, "purged": purged, "deletedFiles": deleted}
            detail["dryRun"] = dry_run
            record(session, self.tenant, _detailed(audit, detail))
        return StoragePurge(scanned, purged, deleted)

    def purge_metrics(
        self,
        *,
        namespace: str | None,
        flow_id: str | None,
        start: datetime | None,
        end: datetime,
        audit: ApiAction,
    ) -> int:
        """Kestra 2's PurgeMetrics: delete the metrics recorded in [start, end] of one flow, a namespace prefix or
        the whole tenant; return how many."""
        with transaction(self.sessions) as session:
            count = metric_entries.purge_metrics(
                session, self.tenant, namespace=namespace, flow_id=flow_id, start=start, end=end
            )
            record(session, self.tenant, _detailed(audit, {"metrics": count}))
        return count

    def started_children(self, execution_id: str) -> list[str]:
        """Running executions this one started without waiting for them (Subflow or ForEachItem `wait: false`)."""
        with read_only(self.sessions) as session:
            return store_housekeeping.started_children(session, self.tenant, execution_id)

    def purge_logs(
        self,
        *,
        namespace: str | None,
        flow_id: str | None,
        levels: Sequence[str] | None,
        start: datetime | None,
        end: datetime,
        audit: ApiAction,
    ) -> int:
        """Delete the log lines written in [start, end], by namespace, flow and level; return how many."""
        with transaction(self.sessions) as session:
            count = store_housekeeping.delete_log_lines(
                session, namespace=namespace, flow_id=flow_id, levels=levels, start=start, end=end
            )
            record(session, self.tenant, _detailed(audit, {"logs": count}))
        return count


def _modified_in(path: Path, start: datetime | None, end: datetime) -> bool:
    modified = datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)
    return (start is None or modified >= start) and modified <= end


def _revisions_to_purge(
    revisions: Sequence[FlowRevisionRow], keep_amount: int | None, before: datetime | None
) -> list[FlowRevisionRow]:
    """Kestra's Version.revisionsToPurge over one flow's revisions (oldest first)."""
    if len(revisions) <= 1:
        return []
    latest = revisions[-1].revision
    older = [r for r in revisions if r.revision != latest]
    if keep_amount is not None:
        return [
            r for r in sorted(revisions, key=lambda r: r.revision, reverse=True)[keep_amount:] if r.revision != latest
        ]
    if before is not None:
        return [r for r in older if r.created_at <= before]
    return older


def _prefix_match(namespace: str, wanted: Sequence[str] | None, pattern: str | None, children: bool) -> bool:
    # Kestra's PurgeTask.findNamespaces: a child is any namespace that starts with the given one (a plain
    # prefix, as Kestra compares), a pattern is a wildcard over the whole name.
    if pattern is not None:
        return fnmatch.fnmatchcase(namespace, pattern)
    if wanted is None:
        return True
    return any(namespace.startswith(w) if children else namespace == w for w in wanted)


def _matches_namespace(namespace: str, wanted: Sequence[str] | None, pattern: str | None, children: bool) -> bool:
    if pattern is not None:
        return fnmatch.fnmatchcase(namespace, pattern)
    if wanted is None:
        return True
    return any(namespace == w or (children and namespace.startswith(w + ".")) for w in wanted)


def _detailed(action: ApiAction, detail: dict[str, object]) -> ApiAction:
    return replace(action, detail={**(action.detail or {}), **detail})
