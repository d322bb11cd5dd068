"""The audit hash chain: canonical JSON of an event, the hash that links it to the previous one, and its MAC.

The SHA-256 chain shows a change to anyone who lacks write access to the database: whoever can write
can also recompute every hash and the head. The MAC (HMAC-SHA256 with a key the application holds and
the database does not) is what resists a rewrite by a database superuser: without the key, an altered
event, a recomputed chain or a lowered head cannot be given MACs that verify.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

GENESIS_HASH = "0" * 64


def canonical_json(value: Any) -> str:
    """Stable JSON: sorted keys, no whitespace, UTF-8 kept; the bytes that are hashed."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def chain_hash(prev_hash: str, event: dict[str, Any]) -> str:
    """``sha256(prev_hash || canonical_json(event))`` as hex."""
    return hashlib.sha256((prev_hash + canonical_json(event)).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ChainBreak:
    """Where a chain stops verifying."""

    seq: int
    reason: str


def verify_chain(events: Iterable[tuple[int, str, str, dict[str, Any]]]) -> ChainBreak | None:
    """Re-walk ``(seq, prev_hash, hash, hashed_event)`` rows in order; None when the chain holds."""
    expected_prev = GENESIS_HASH
    expected_seq = 1
    for seq, prev_hash, hash_, event in events:
        if seq != expected_seq:
            return ChainBreak(seq, f"sequence gap: expected {expected_seq}")
        if prev_hash != expected_prev:
            return ChainBreak(seq, "prev_hash does not match the previous event's hash")
        if chain_hash(prev_hash, event) != hash_:
            return ChainBreak(seq, "hash does not match the event's content")
        expected_prev = hash_
        expected_seq += 1
    return None


# ---- keyed MACs -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditKey:
    """A MAC key and its id (stored beside each MAC, so old keys still verify after a rotation)."""

    key_id: str
    secret: bytes = field(repr=False)

    @classmethod
    def from_secret(cls, secret: bytes) -> AuditKey:
        # The id is derived, not chosen: two processes given the same secret agree on it, and it reveals nothing.
        key_id = hmac.new(secret, b"chorus-audit-key-id", hashlib.sha256).hexdigest()[:16]
        return cls(key_id, secret)


def event_mac(key: AuditKey, hash_: str) -> str:
    """HMAC-SHA256 over an event's chain hash, which already covers the event and every event before it."""
    return hmac.new(key.secret, b"event:" + hash_.encode("ascii"), hashlib.sha256).hexdigest()


def head_mac(key: AuditKey, chain_key: str, seq: int, hash_: str) -> str:
    """HMAC-SHA256 over a chain's head: its length is covered, so dropping the newest events shows."""
    message = f"head:{seq}:{hash_}:{chain_key}".encode()
    return hmac.new(key.secret, message, hashlib.sha256).hexdigest()


def event_mac_problem(
    keys: Mapping[str, AuditKey], key_id: str | None, mac: str | None, hash_: str, *, require: bool
) -> str | None:
    """Why an event's stored MAC does not hold, or None when it does (or is absent and not required)."""
    return _mac_problem(keys, key_id, mac, lambda key: event_mac(key, hash_), require)


def head_mac_problem(
    keys: Mapping[str, AuditKey], key_id: str | None, mac: str | None, chain_key: str, seq: int, hash_: str,
    *, require: bool,
) -> str | None:  # fmt: skip
    """Why a chain head's stored MAC does not hold, or None when it does (or is absent and not required)."""
    return _mac_problem(keys, key_id, mac, lambda key: head_mac(key, chain_key, seq, hash_), require)


def _mac_problem(
    keys: Mapping[str, AuditKey], key_id: str | None, mac: str | None, make: Callable[[AuditKey], str], require: bool
) -> str | None:
    # `require`: with a key configured a missing MAC fails, since stripping the MACs and recomputing the
    # plain chain would otherwise pass for a trail written before the key existed.
    if mac is None or key_id is None:
        return "no MAC (written without a key; a database writer could have recomputed it)" if require else None
    key = keys.get(key_id)
    if key is None:
        return f"MAC made with key {key_id}, which is not configured (CHORUS_AUDIT_KEY or CHORUS_AUDIT_PREVIOUS_KEYS)"
    if not hmac.compare_digest(mac, make(key)):
        return "MAC does not match: the event or the chain before it was rewritten without the key"
    return None
