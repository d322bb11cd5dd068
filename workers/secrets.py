"""`secret('NAME')` for task expressions, and the redaction of every secret value a task has read.

Values come from `SECRET_<NAME>` environment variables, base64-encoded, as Kestra's open-source secret
backend reads them, and, when `CHORUS_SECRETS_DIR` is set, from one file per secret in that directory (how
Kubernetes mounts a Secret as a volume and Docker provides its secrets: plain values, file name = secret
name). The deployment decides who sees them; nothing is stored in the database.
"""

from __future__ import annotations

import base64
import binascii
import re
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

from orchestrator.core.errors import ExpressionError

#: What a secret value becomes in logs and failure messages (Kestra's mask).
MASK = "******"
#: Shorter values are not masked: redacting "a" or "on" would shred every log line without protecting anything.
_MIN_MASKED_LENGTH = 4
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


def secret_backend(environ: Mapping[str, str], secrets_dir: Path | None) -> SecretBackend:
    """The worker's backend: `SECRET_*` variables, then the secrets directory when one is configured."""
    env = EnvSecrets(environ)
    return FirstFound([env, FileSecrets(secrets_dir)]) if secrets_dir is not None else env


class SecretKeeper:
    """Hands out secrets for one task attempt and remembers them, so its logs and errors can be redacted."""

    def __init__(self, backend: SecretBackend) -> None:
        self._backend = backend
        self._revealed: set[str] = set()
        self._inputs: set[str] = set()
        self._lock = threading.Lock()

    def remember_input(self, value: str) -> None:
        """A SECRET input's value: masked in logs as Kestra does, with one star per character."""
        with self._lock:
            self._inputs.add(value)

    def reveal(self, name: str) -> str:
        value = self._backend.get(name)
        with self._lock:
            self._revealed.add(value)
            # A secret often travels base64-encoded (a Basic auth header), so mask that form too.
            self._revealed.add(base64.b64encode(value.encode()).decode())
        return value

    def redact(self, text: str) -> str:
        """`text` with every revealed value replaced by the mask (longest first: no partial leftovers)."""
        with self._lock:
            values = sorted((v for v in self._revealed if len(v) >= _MIN_MASKED_LENGTH), key=len, reverse=True)
            inputs = sorted((v for v in self._inputs if len(v) >= _MIN_MASKED_LENGTH), key=len, reverse=True)
        for value in values:
            text = text.replace(value, MASK)
        for value in inputs:
            text = text.replace(value, "*" * len(value))
        return text
