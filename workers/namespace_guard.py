"""The namespace checks of a running task: another namespace, an execution by id, or a stored file by URI.

Every decision is `orchestrator.core.namespace_access`'s, for the namespace of the flow that runs the task.
An execution named by id that the flow may not see is reported as not found, as the API answers a caller
who cannot read its namespace: a flow must not learn which namespace an id belongs to.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from orchestrator import internal_storage as storage
from orchestrator.core.errors import TaskFailed
from orchestrator.core.namespace_access import Use
from orchestrator.engine import ClaimedTaskRun, Engine


class NamespaceGuard:
    """Checks for one claimed task run, against the deployment's namespace grants."""

    def __init__(self, engine: Engine, claimed: ClaimedTaskRun) -> None:
        self._engine = engine
        self._claimed = claimed
        self._access = engine.settings.namespace_grants

    @property
    def namespace(self) -> str:
        return self._claimed.flow.namespace

    def allows(self, target: str, use: Use) -> bool:
        return self._access.allows(self.namespace, target, use)

    def require(self, target: str, use: Use, what: str) -> None:
        """Raise NamespaceAccessDenied unless this flow's namespace may do `use` on `target`."""
        self._access.require(self.namespace, target, use, what)

    def execution(self, execution_id: str, use: Use, what: str) -> str:
        """The namespace of an execution this flow may `use`; a not-found failure otherwise."""
        location = self._engine.execution_location(execution_id)
        if location is None or not self.allows(location[0], use):
            raise TaskFailed(
                f"{what}: execution '{execution_id}' not found in the namespaces '{self.namespace}' may use ({use})",
                retryable=False,
            )
        return location[0]

    def stored_file(self, uri: str, what: str) -> Path:
        """The local file behind `uri` when it belongs to an execution this flow may read, or this execution."""
        try:
            path = storage.local_path(self._engine.settings.data_dir, uri)
        except storage.StorageError as e:
            raise TaskFailed(f"{what}: {e.message}", retryable=False) from e
        at = self._claimed.coordinates
        own = storage.execution_prefix(self.namespace, self._claimed.flow.id, at.execution_id)
        if storage.belongs_to(uri, own) or self._readable_execution_file(uri):
            return path
        raise TaskFailed(
            f"{what}: {uri} is not a file of an execution namespace '{self.namespace}' may read", retryable=False
        )

    def _readable_execution_file(self, uri: str) -> bool:
        # The path does not tell where the namespace ends (`/a/b/c/executions/...` is a.b's flow c or a's
        # flow b...), so the execution id in it is looked up and its exact prefix must match.
        parts = PurePosixPath(uri.removeprefix(storage.SCHEME)).parts
        for index in range(3, len(parts) - 1):
            if parts[index] != "executions":
                continue
            location = self._engine.execution_location(parts[index + 1])
            if location is None:
                continue
            prefix = storage.execution_prefix(location[0], location[1], parts[index + 1])
            if PurePosixPath(*parts[: index + 2]) == prefix:
                return self.allows(location[0], Use.EXECUTION_READ)
        return False
