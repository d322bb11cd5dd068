"""The I/O-backed expression functions (`errorLogs()`, `kv()`, `secret()`) a worker offers its templates."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from orchestrator import internal_storage as storage
from orchestrator.core.errors import ChorusError, ExpressionError
from orchestrator.core.namespace_access import Use
from orchestrator.engine import ClaimedTaskRun, Engine
from orchestrator.secret_backends import flow_secret_backend
from workers.namespace_guard import NamespaceGuard
from workers.secrets import SecretKeeper


class EngineFunctions:
    """Implements orchestrator.core.expressions.ExpressionFunctions for one claimed task run."""

    def __init__(self, engine: Engine, claimed: ClaimedTaskRun, secrets: SecretKeeper | None = None) -> None:
        self._engine = engine
        self._claimed = claimed
        self.guard = NamespaceGuard(engine, claimed)
        # The namespace's own secrets, then the global ones (SECRET_<NAME>, Kestra's open-source convention)
        # where CHORUS_GLOBAL_SECRETS lets this namespace read them.
        self.secrets = secrets or SecretKeeper(flow_secret_backend(engine.settings, claimed.flow.namespace))
        inputs = claimed.variables.get("inputs", {})
        for declared in claimed.flow.inputs:
            if declared.type == "SECRET" and isinstance(inputs.get(declared.id), str):
                self.secrets.remember_input(inputs[declared.id])

    @property
    def engine(self) -> Engine:
        return self._engine

    def secret(self, name: str) -> str:
        return self.secrets.reveal(name)

    def error_logs(self) -> list[dict[str, Any]]:
        return self._engine.error_logs(self._claimed.coordinates.execution_id)

    def read_file(self, uri: str) -> str:
        """A file of this execution, of its parent (a subflow reads the batch its ForEachItem wrote), or of a
        Subflow child it started (a FILE output; RetryCaseTest#retryNewExecutionSubflowOutputs); a path that is no
        `kestra://` URI names a file of the flow's namespace, as in Kestra. Kestra 2 reads any execution's file of
        an allowed namespace; Chorus keeps one execution's files from another it did not start (issue 16)."""
        at = self._claimed.coordinates
        flow = self._claimed.flow
        if not uri.startswith(storage.SCHEME):
            return self._namespace_file(flow.namespace, uri)
        readable = [storage.execution_prefix(flow.namespace, flow.id, at.execution_id)]
        parent = self._claimed.variables.get("trigger") or {}
        if {"namespace", "flowId", "executionId"} <= parent.keys() and self.guard.allows(
            str(parent["namespace"]), Use.EXECUTION_READ
        ):
            readable.append(
                storage.execution_prefix(str(parent["namespace"]), str(parent["flowId"]), str(parent["executionId"]))
            )
        try:
            path = storage.local_path(self._engine.settings.data_dir, uri)
        except storage.StorageError as e:
            raise ExpressionError(e.message) from e
        readable.extend(self._child_prefix(uri, at.execution_id))
        if not any(storage.belongs_to(uri, prefix) for prefix in readable):
            raise ExpressionError(f"read(): {uri} does not belong to this execution")
        try:
            return path.read_text()
        except OSError as e:
            raise ExpressionError(f"read(): no readable file at {uri}") from e

    def _child_prefix(self, uri: str, execution_id: str) -> list[PurePosixPath]:
        """The storage prefix of the execution `uri` names when this execution started it as a Subflow and this
        flow may read that namespace."""
        parts = PurePosixPath(uri.removeprefix(storage.SCHEME)).parts
        for index, part in enumerate(parts[:-1]):
            if part != "executions":
                continue
            child = parts[index + 1]
            location = self._engine.child_location(child, execution_id)
            if location is not None and self.guard.allows(location[0], Use.EXECUTION_READ):
                return [storage.execution_prefix(location[0], location[1], child)]
        return []

    def _namespace_file(self, namespace: str, path: str) -> str:
        relative = PurePosixPath(path.lstrip("/"))
        if ".." in relative.parts or not relative.parts:
            raise ExpressionError(f"read(): invalid namespace file path {path!r}")
        local = self._engine.settings.data_dir / "storage" / PurePosixPath(*namespace.split("."), "_files", relative)
        try:
            return local.read_text()
        except OSError as e:
            raise ExpressionError(f"read(): no namespace file {path} in namespace {namespace}") from e

    def kv(self, key: str, namespace: str | None, error_on_missing: bool) -> Any:
        """Kestra's `kv(key, namespace, errorOnMissing)`: a namespace KV value, by default the flow's."""
        namespace = namespace or self._claimed.flow.namespace
        # Raised as is (not an ExpressionError): a denial is not a missing key for `??` to replace.
        self.guard.require(namespace, Use.KV_READ, f"kv('{key}', '{namespace}')")
        try:
            return self._engine.kv.get(namespace, key).value.get("v")
        except ChorusError as e:
            if error_on_missing:
                raise ExpressionError(f"The key '{key}' does not exist in the namespace '{namespace}'.") from e
            return None
