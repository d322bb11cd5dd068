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

    def stored_file(self, uri: str, what: str, *, write: bool = False) -> Path:
        """The local file behind `uri` when it belongs to this execution, an execution this flow may read, or
        this namespace's files. With `write` (deleting it) only this flow's own namespace will do: reading
        another namespace's executions is no licence to change their files."""
        try:
            path = storage.local_path(self._engine.settings.data_dir, uri)
        except storage.StorageError as e:
            raise TaskFailed(f"{what}: {e.message}", retryable=False) from e
        owner = self._file_namespace(uri)
        if owner is not None and (owner == self.namespace if write else self.allows(owner, Use.EXECUTION_READ)):
            return path
        raise TaskFailed(
            f"{what}: {uri} is not a file of an execution namespace '{self.namespace}' may "
            f"{'change' if write else 'read'}",
            retryable=False,
        )

    def _file_namespace(self, uri: str) -> str | None:
        """The namespace a stored file belongs to: this execution's, the one of the execution named in its path,
        or this flow's own namespace for its namespace files (`/<ns>/_files/...`); None when unknown."""
        at = self._claimed.coordinates
        if storage.belongs_to(uri, storage.execution_prefix(self.namespace, self._claimed.flow.id, at.execution_id)):
            return self.namespace
        owner = self._execution_file_namespace(uri)
        if owner is not None:
            return owner
        if storage.belongs_to(uri, PurePosixPath("/", *self.namespace.split("."), "_files")):
            return self.namespace
        return None

    def _execution_file_namespace(self, uri: str) -> str | None:
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
                return location[0]
        return None
