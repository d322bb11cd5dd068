"""Property models of Kestra's core utility tasks: state, storage, namespace files, templating, metrics, KV keys.

Each model carries the properties, by Kestra's YAML names, of the Java class it ports
(``io.kestra.plugin.core.<package>.<Class>``); defaults live with the handlers in ``workers``.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, JsonValue, model_validator

from orchestrator.core.prop_types import (
    Bool,
    Int,
    Json,
    ListOrText,
    MapValue,
    Properties,
    Text,
    TextList,
    TextOrList,
    accepting,
    one_of,
)

_FilterType = Annotated[JsonValue, accepting("INCLUDE or EXCLUDE", one_of("INCLUDE", "EXCLUDE"))]
_NullBehavior = Annotated[JsonValue, accepting("FAIL, INCLUDE or EXCLUDE", one_of("FAIL", "INCLUDE", "EXCLUDE"))]
# Kestra 2's ExitState spells the state both ways (its test flows exit-canceled and exit-cancelled).
_ExitState = Annotated[
    JsonValue,
    accepting(
        "SUCCESS, WARNING, KILLED, FAILED, CANCELED or CANCELLED",
        one_of("SUCCESS", "WARNING", "KILLED", "FAILED", "CANCELED", "CANCELLED"),
    ),
]


# -- state (deprecated in Kestra, kept valid): a JSON map in the namespace KV store -----------------


class _StateProps(Properties):
    name: Text | None = None
    namespace: Bool | None = None
    taskrun_value: Bool | None = None


class StateGetProps(_StateProps):
    error_on_missing: Bool | None = None


class StateSetProps(_StateProps):
    data: MapValue | None = None


class StateDeleteProps(StateGetProps):
    pass


class KvGetKeysProps(Properties):
    prefix: Text | None = None
    namespace: Text | None = None


# -- storage ---------------------------------------------------------------------------------------


class ConcatProps(Properties):
    files: ListOrText
    separator: Text | None = None
    extension: Text | None = None


class DeduplicateItemsProps(Properties):
    from_: Text = Field(alias="from")
    expr: Text


class StorageDeleteProps(Properties):
    uri: Text
    error_on_missing: Bool | None = None


class FilterItemsProps(Properties):
    from_: Text = Field(alias="from")
    filter_condition: Text
    filter_type: _FilterType | None = None
    error_or_null_behavior: _NullBehavior | None = None


class ReverseProps(Properties):
    from_: Text = Field(alias="from")
    separator: Text | None = None
    charset: Text | None = None


class SizeProps(Properties):
    uri: Text


class SplitProps(Properties):
    from_: Text = Field(alias="from")
    bytes: Text | None = None
    partitions: Int | None = None
    rows: Int | None = None
    separator: Text | None = None


class WriteProps(Properties):
    content: Text
    extension: Text | None = None


# -- namespace files -------------------------------------------------------------------------------


class UploadFilesProps(Properties):
    files_map: MapValue | None = None
    files: TextOrList | None = None
    namespace: Text
    destination: Text | None = None
    conflict: (
        Annotated[JsonValue, accepting("OVERWRITE, ERROR or SKIP", one_of("OVERWRITE", "ERROR", "SKIP"))] | None
    ) = None


class DownloadFilesProps(Properties):
    namespace: Text
    files: TextOrList
    destination: Text | None = None


class DeleteFilesProps(Properties):
    namespace: Text
    files: TextOrList
    delete_parent_folder: Bool | None = None


# -- templating, metrics, execution ----------------------------------------------------------------


class TemplatedTaskProps(Properties):
    spec: Text


class MetricPublishProps(Properties):
    metrics: Annotated[JsonValue, accepting("a list of metrics", lambda v: isinstance(v, list))]


class ExitProps(Properties):
    state: _ExitState | None = None


class KillProps(Properties):
    propagate_kill: Bool | None = None


class SetVariablesProps(Properties):
    variables: MapValue
    overwrite: Bool | None = None


class UnsetVariablesProps(Properties):
    variables: TextList
    ignore_missing: Bool | None = None


class CountProps(Properties):
    flows: Json = None
    states: TextList | None = None
    start_date: Text | None = None
    end_date: Text | None = None
    expression: Text
    namespaces: TextList | None = None


class PurgeExecutionsProps(Properties):
    namespace: Text | None = None
    flow_id: Text | None = None
    start_date: Text | None = None
    end_date: Text
    states: TextList | None = None
    purge_execution: Bool | None = None
    purge_log: Bool | None = None
    purge_metric: Bool | None = None
    purge_storage: Bool | None = None


class PurgeLogsProps(Properties):
    namespace: Text | None = None
    flow_id: Text | None = None
    log_levels: TextList | None = None
    start_date: Text | None = None
    end_date: Text


class PurgeMetricsProps(Properties):
    """Kestra 2's `metric.PurgeMetrics`: `namespace` alone is a prefix; `flowId` needs `namespace`."""

    namespace: Text | None = None
    flow_id: Text | None = None
    start_date: Text | None = None
    end_date: Text


class PurgeFlowsProps(Properties):
    """Kestra 2's `flow.PurgeFlows`: old revisions of the matching flows, by its `version` behaviour."""

    flow_pattern: Text | None = None
    namespaces: TextList | None = None
    namespace_pattern: Text | None = None
    behavior: MapValue | None = None  #: {type: version, keepAmount (>= 1) | before (ISO instant)}; keepAmount 1
    include_child_namespaces: Bool | None = None

    @model_validator(mode="after")
    def _one_version_rule(self) -> PurgeFlowsProps:
        behavior = self.behavior if isinstance(self.behavior, dict) else {}
        if behavior.get("before") is not None and behavior.get("keepAmount") is not None:
            raise ValueError("behavior: Cannot set both 'before' and 'keepAmount' properties")  # Kestra's message
        keep = behavior.get("keepAmount")
        if isinstance(keep, int) and not isinstance(keep, bool) and keep < 1:
            raise ValueError("behavior.keepAmount must be 1 or more")
        kind = behavior.get("type")
        if kind is not None and str(kind).lower() != "version":
            raise ValueError(f"behavior.type: expected version, got {kind!r}")
        return self


class PurgeStorageProps(Properties):
    """Kestra 2's `storage.PurgeStorage`: execution files by last-modified date; `dryRun` (default true) only counts."""

    namespace: Text | None = None
    flow_id: Text | None = None
    start_date: Text | None = None
    end_date: Text
    dry_run: Bool | None = None


class PurgeKvProps(Properties):
    key_pattern: Text | None = None
    namespaces: TextList | None = None
    namespace_pattern: Text | None = None
    behavior: MapValue | None = None
    include_child_namespaces: Bool | None = None
    expired_only: Bool | None = None
