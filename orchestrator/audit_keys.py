"""The audit MAC keys a process holds: the current one (signs new events) and previous ones (still verify).

A key comes from `CHORUS_AUDIT_KEY` or, better, `CHORUS_AUDIT_KEY_FILE` (a mounted Kubernetes Secret, or the
0600 file `chorus local` generates in its data directory), never from the database: the point of the MAC is
that whoever can write the database cannot forge it. Rotation: set the new key, move the old one to
`CHORUS_AUDIT_PREVIOUS_KEYS`; each event names the key id it was made with.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.core.audit import AuditKey
from orchestrator.core.errors import ConfigurationError
from orchestrator.settings import Settings

#: Shorter secrets are refused: the MAC is only as strong as a guess of its key.
MIN_KEY_CHARS = 32
KEY_FILE_NAME = "audit.key"


@dataclass(frozen=True)
class AuditKeyring:
    """The key new events are signed with (None: unkeyed, as before) and every key verification accepts."""

    current: AuditKey | None
    by_id: dict[str, AuditKey] = field(default_factory=dict)


def load_keyring(settings: Settings) -> AuditKeyring:
    """Read the configured keys; a file that cannot be read or a key too short names its variable."""
    current: AuditKey | None = None
    if settings.audit_key is not None and settings.audit_key_file is not None:
        raise ConfigurationError("CHORUS_AUDIT_KEY", "set CHORUS_AUDIT_KEY or CHORUS_AUDIT_KEY_FILE, not both")
    if settings.audit_key is not None:
        current = _key("CHORUS_AUDIT_KEY", settings.audit_key.get_secret_value())
    elif settings.audit_key_file is not None:
        try:
            text = settings.audit_key_file.read_text(encoding="utf-8")
        except OSError as e:
            raise ConfigurationError("CHORUS_AUDIT_KEY_FILE", f"cannot read {settings.audit_key_file}: {e}") from e
        current = _key("CHORUS_AUDIT_KEY_FILE", text)
    previous = [_key("CHORUS_AUDIT_PREVIOUS_KEYS", s.get_secret_value()) for s in settings.audit_previous_keys]
    keys = [k for k in (current, *previous) if k is not None]
    return AuditKeyring(current, {k.key_id: k for k in keys})


def _key(variable: str, text: str) -> AuditKey:
    secret = text.strip()
    if len(secret) < MIN_KEY_CHARS:
        raise ConfigurationError(variable, f"an audit key needs {MIN_KEY_CHARS} characters or more (got {len(secret)})")
    return AuditKey.from_secret(secret.encode("utf-8"))


def ensure_key_file(path: Path) -> Path:
    """Create a random key file readable by this user alone, unless one exists; `chorus local` keeps it."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        path.chmod(0o600)  # whatever an earlier run or a copy left, the key stays private
        return path
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(secrets.token_hex(32) + "\n")
    return path
