"""Signed checkpoints of the audit chains' heads, kept outside the database to anchor the trail.

A MAC'd head shows a chain shortened after it was written, but not a whole chain deleted (events and
head together) nor a chain rolled back to an older head someone copied with its MAC. A checkpoint is the
list of every chain's (seq, hash) at one moment, with an HMAC over it made with the audit key: kept
where the database's writers cannot reach (an object store with retention, a ticket, a printout), it lets
`chorus audit verify --checkpoint FILE` prove that every chain still holds at least what it held then.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from orchestrator.audit_keys import AuditKeyring
from orchestrator.core.audit import AuditKey, canonical_json
from orchestrator.core.errors import ConfigurationError
from orchestrator.store.tables import AuditEventRow, AuditHeadRow

VERSION = 1


@dataclass(frozen=True)
class CheckpointBreak:
    """A chain that no longer holds what the checkpoint recorded."""

    chain_key: str
    seq: int
    reason: str


def make_checkpoint(session: Session, key: AuditKey, *, at: datetime | None = None) -> dict[str, Any]:
    """Every chain's head now, signed with `key`: a JSON-ready document."""
    heads = {row.chain_key: [row.seq, row.hash] for row in session.execute(select(AuditHeadRow)).scalars()}
    body: dict[str, Any] = {
        "version": VERSION,
        "at": (at or datetime.now(UTC)).isoformat(),
        "keyId": key.key_id,
        "heads": heads,
    }
    return {**body, "mac": _mac(key, body)}


def _mac(key: AuditKey, body: dict[str, Any]) -> str:
    return hmac.new(key.secret, b"checkpoint:" + canonical_json(body).encode(), hashlib.sha256).hexdigest()


def check_checkpoint(session: Session, document: Any, keyring: AuditKeyring) -> CheckpointBreak | None:
    """The first chain that falls short of the checkpoint (None when all hold); a forged checkpoint is refused."""
    if (
        not isinstance(document, dict)
        or document.get("version") != VERSION
        or not isinstance(document.get("heads"), dict)
    ):
        raise ConfigurationError("--checkpoint", "not a Chorus audit checkpoint (version 1)")
    key = keyring.by_id.get(str(document.get("keyId")))
    if key is None:
        raise ConfigurationError("--checkpoint", f"signed with key {document.get('keyId')}, which is not configured")
    body = {k: v for k, v in document.items() if k != "mac"}
    if not hmac.compare_digest(str(document.get("mac")), _mac(key, body)):
        raise ConfigurationError("--checkpoint", "its MAC does not match: the checkpoint itself was altered")
    for chain_key, (seq, hash_) in sorted(document["heads"].items()):
        stored = session.scalar(
            select(AuditEventRow.hash).where(AuditEventRow.chain_key == chain_key, AuditEventRow.seq == seq)
        )
        if stored is None:
            return CheckpointBreak(
                chain_key, seq, f"the chain no longer reaches seq {seq} (checkpoint of {document['at']})"
            )
        if stored != hash_:
            return CheckpointBreak(
                chain_key, seq, f"the event at seq {seq} differs from the checkpoint of {document['at']}"
            )
    return None


def dumps(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True) + "\n"
