"""Where `secret('NAME')` reads a secret: a namespace's directory, then (where allowed) `SECRET_*` and the top
directory. Workers reveal secrets to task expressions (workers/secrets.py adds redaction); the engine renders a
Webhook trigger's `key` with them, as Kestra renders it in a run context that has `secret()`.

A flow reads its own namespace's secrets first: one file per secret in `CHORUS_SECRETS_DIR/<namespace>/`
(how Kubernetes mounts a Secret as a volume and Docker provides its secrets: plain values, file name =
secret name). Global secrets come after, and only for namespaces `CHORUS_GLOBAL_SECRETS` lists (all by
default, as in Kestra OSS): `SECRET_<NAME>` environment variables, base64-encoded as Kestra's open-source
backend reads them, then files at the top of the directory. Nothing is stored in the database.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

from pydantic import JsonValue

from orchestrator.core.errors import ExpressionError
from orchestrator.core.namespace_access import matches
from orchestrator.settings import Settings

_NAME = re.compile(r"[A-Za-z0-9_]+")


class EnvSecrets:
    """Reads `SECRET_<NAME>` (base64) from a mapping, normally the worker's environment."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def get(self, name: str) -> str:
        if not _NAME.fullmatch(name):
            raise ExpressionError(f"Invalid secret name '{name}': use letters, digits and underscores")
        # Kestra looks secrets up upper-cased: `secret('my_secret')` reads SECRET_MY_SECRET.
        encoded = self._environ.get(f"SECRET_{name}", self._environ.get(f"SECRET_{name.upper()}"))
        if encoded is None:
            raise ExpressionError(f"Cannot find secret for key '{name}'")
        try:
            # Base64 may come wrapped over several lines (as `base64` prints it).
            return base64.b64decode("".join(encoded.split()), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as e:
            raise ExpressionError(f"Secret '{name}' is not valid base64 (SECRET_{name})") from e


class SecretBackend(Protocol):
    def get(self, name: str) -> str: ...


class FileSecrets:
    """Reads secret `NAME` from the file `NAME` (or `name`) in a directory: the plain value, one trailing
    newline dropped (`echo value > NAME` writes one)."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory

    def get(self, name: str) -> str:
        if not _NAME.fullmatch(name):  # also keeps the lookup inside the directory
            raise ExpressionError(f"Invalid secret name '{name}': use letters, digits and underscores")
        for candidate in (name, name.upper()):
            path = self._directory / candidate
            if path.is_file():
                try:
                    value = path.read_text(encoding="utf-8")
                except (OSError, UnicodeDecodeError) as e:
                    raise ExpressionError(f"Secret '{name}' cannot be read from {self._directory}") from e
                return value[:-1] if value.endswith("\n") else value
        raise ExpressionError(f"Cannot find secret for key '{name}'")


class FirstFound:
    """Asks each backend in turn; the first that has the secret answers."""

    def __init__(self, backends: Sequence[SecretBackend]) -> None:
        self._backends = list(backends)

    def get(self, name: str) -> str:
        missing: ExpressionError | None = None
        for backend in self._backends:
            try:
                return backend.get(name)
            except ExpressionError as e:
                if not str(e.message).startswith("Cannot find secret"):
                    raise  # an invalid name or an unreadable value is an error, not a miss
                missing = e
        raise missing or ExpressionError(f"Cannot find secret for key '{name}'")


def secret_backend(
    environ: Mapping[str, str], secrets_dir: Path | None, namespace: str | None = None, global_secrets: bool = True
) -> SecretBackend:
    """A flow's backend: its namespace's directory, then (when allowed) `SECRET_*` and the top directory."""
    backends: list[SecretBackend] = []
    if secrets_dir is not None and namespace is not None:
        # Namespaces are validated names (no '/', never starting with '.'): the folder stays inside the dir.
        backends.append(FileSecrets(secrets_dir / namespace))
    if global_secrets:
        backends.append(EnvSecrets(environ))
        if secrets_dir is not None:
            backends.append(FileSecrets(secrets_dir))
    return FirstFound(backends)


def flow_secret_backend(settings: Settings, namespace: str, environ: Mapping[str, str] | None = None) -> SecretBackend:
    """The backend a flow of `namespace` reads: its directory, then the global secrets where
    CHORUS_GLOBAL_SECRETS lets this namespace read them."""
    global_secrets = any(matches(pattern, namespace) for pattern in settings.global_secrets)
    return secret_backend(
        os.environ if environ is None else environ, settings.secrets_dir, namespace, global_secrets=global_secrets
    )


class SecretFunctions:
    """Expression functions with `secret()` only: what the engine offers a template it renders outside a task
    (a Webhook trigger's `key`). kv(), read() and errorLogs() belong to a task run and fail here."""

    def __init__(self, backend: SecretBackend) -> None:
        self._backend = backend

    def secret(self, name: str) -> str:
        return self._backend.get(name)

    def kv(self, key: str, namespace: str | None, error_on_missing: bool) -> JsonValue:
        raise ExpressionError("The kv() function is not available here")

    def error_logs(self) -> list[dict[str, JsonValue]]:
        raise ExpressionError("The errorLogs() function is not available here")

    def read_file(self, uri: str) -> str:
        raise ExpressionError("The read() function is not available here")
