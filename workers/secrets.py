"""`secret('NAME')` for task expressions, and the redaction of every secret value a task has read.

Where a secret is read from (a namespace's directory, `SECRET_*`, the top directory) is
orchestrator/secret_backends.py, shared with the engine (a Webhook trigger's `key` may name a secret).

Redaction masks a revealed value, and also what filters derive from it (reversed, case changed, a slice of
at least `_FRAGMENT` characters, base64): `| reverse` or `| slice(1)` must not print a secret in clear.
"""

from __future__ import annotations

import base64
import json
import threading

from orchestrator.secret_backends import EnvSecrets, FileSecrets, FirstFound, SecretBackend, secret_backend

__all__ = ["MASK", "EnvSecrets", "FileSecrets", "FirstFound", "SecretBackend", "SecretKeeper", "secret_backend"]

#: What a secret value becomes in logs and failure messages (Kestra's mask).
MASK = "******"
#: Shorter values are not masked: redacting "a" or "on" would shred every log line without protecting anything.
_MIN_MASKED_LENGTH = 4
#: A run of this many characters of a secret (or of its reverse), in any case, is masked wherever it appears:
#: `slice(1)` leaves most of a secret. Shorter fragments pass, or every word would be at risk of masking.
_FRAGMENT = 6


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
