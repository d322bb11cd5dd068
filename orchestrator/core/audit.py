"""The audit hash chain: canonical JSON of an event and the hash that links it to the previous one."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
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
