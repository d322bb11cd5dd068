"""`secret('NAME')` for task expressions, and the redaction of every secret value a task has read.

A flow reads its own namespace's secrets first: one file per secret in `CHORUS_SECRETS_DIR/<namespace>/`
(how Kubernetes mounts a Secret as a volume and Docker provides its secrets: plain values, file name =
secret name). Global secrets come after, and only for namespaces `CHORUS_GLOBAL_SECRETS` lists (all by
default, as in Kestra OSS): `SECRET_<NAME>` environment variables, base64-encoded as Kestra's open-source
backend reads them, then files at the top of the directory. Nothing is stored in the database.

Redaction masks a revealed value, and also what filters derive from it (reversed, case changed, a slice of
at least `_FRAGMENT` characters, base64): `| reverse` or `| slice(1)` must not print a secret in clear.
"""

from __future__ import annotations

import base64
import binascii
import json
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
#: A run of this many characters of a secret (or of its reverse), in any case, is masked wherever it appears:
#: `slice(1)` leaves most of a secret. Shorter fragments pass, or every word would be at risk of masking.
_FRAGMENT = 6
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


class SecretKeeper:
    """Hands out secrets for one task attempt and remembers them, so its logs and errors can be redacted."""

    def __init__(self, backend: SecretBackend) -> None:
        self._backend = backend
        self._revealed: set[str] = set()
        self._inputs: set[str] = set()
        self._lock = threading.Lock()
        self._reads = 0

    def remember_input(self, value: str) -> None:
        """A SECRET input's value: masked in logs as Kestra does, with one star per character."""
        with self._lock:
            self._inputs.add(value)

    def reveal(self, name: str) -> str:
        value = self._backend.get(name)
        with self._lock:
            self._reads += 1
            self._revealed.add(value)
            # A secret often travels base64-encoded (a Basic auth header), so mask that form too, and
            # JSON-escaped (quotes, backslashes, non-ASCII as \uXXXX) inside a JSON text.
            self._revealed.add(base64.b64encode(value.encode()).decode())
            self._revealed.add(json.dumps(value)[1:-1])
        return value

    @property
    def reads(self) -> int:
        """How many secret() calls this attempt made: a render that raised it computed from a secret."""
        return self._reads

    def redact(self, text: str) -> str:
        """`text` with every revealed value, and what filters derive from one, replaced by the mask."""
        with self._lock:
            values = sorted((v for v in self._revealed if len(v) >= _MIN_MASKED_LENGTH), key=len, reverse=True)
            inputs = sorted((v for v in self._inputs if len(v) >= _MIN_MASKED_LENGTH), key=len, reverse=True)
        for value in values:
            text = text.replace(value, MASK)
        if values:
            text = _mask_fragments(text, values)
        for value in inputs:
            text = text.replace(value, "*" * len(value))
        if inputs:
            text = _mask_fragments(text, inputs)  # `{{ inputs.password | reverse }}` too
        return text


def _fold(text: str) -> str:
    """Lower case, one character for one (a few characters lower-case to two, which would shift offsets)."""
    folded = text.lower()
    return folded if len(folded) == len(text) else "".join(c if len(c.lower()) != 1 else c.lower() for c in text)


def _mask_fragments(text: str, values: list[str]) -> str:
    """Mask every run of text made of fragments of a secret, its reverse or its case-changed forms."""
    grams: dict[int, set[str]] = {}
    for value in values:
        folded = _fold(value)
        size = min(len(folded), _FRAGMENT)
        for form in (folded, folded[::-1]):
            grams.setdefault(size, set()).update(form[i : i + size] for i in range(len(form) - size + 1))
    folded_text = _fold(text)
    covered = bytearray(len(text))
    for size, known in grams.items():
        for i in range(len(text) - size + 1):
            if folded_text[i : i + size] in known:
                covered[i : i + size] = b"\x01" * size
    if not any(covered):
        return text
    # Callers redact JSON text too (workers.ai, workers.agent): never swallow a quote, a backslash or the
    # character an escape applies to, so what was valid JSON stays valid.
    i = 0
    while i < len(text):
        if text[i] == "\\":  # the escape and what it applies to: one character, or `uXXXX`
            end = i + (6 if text[i + 1 : i + 2] == "u" else 2)
            covered[i:end] = bytes(len(covered[i:end]))
            i = end
            continue
        if text[i] == '"':
            covered[i] = 0
        i += 1
    out: list[str] = []
    i = 0
    while i < len(text):
        if covered[i]:
            while i < len(text) and covered[i]:
                i += 1
            out.append(MASK)
        else:
            out.append(text[i])
            i += 1
    return "".join(out)
