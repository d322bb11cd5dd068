from __future__ import annotations

from orchestrator.core.audit import (
    GENESIS_HASH,
    AuditKey,
    canonical_json,
    chain_hash,
    event_mac,
    event_mac_problem,
    head_mac,
    verify_chain,
)


def _chain(payloads: list[dict[str, object]]) -> list[tuple[int, str, str, dict[str, object]]]:
    rows, prev = [], GENESIS_HASH
    for seq, payload in enumerate(payloads, start=1):
        event = {"seq": seq, **payload}
        digest = chain_hash(prev, event)
        rows.append((seq, prev, digest, event))
        prev = digest
    return rows


def test_canonical_json_is_independent_of_key_order() -> None:
    assert canonical_json({"b": 1, "a": [1, {"d": 2, "c": 3}]}) == canonical_json({"a": [1, {"c": 3, "d": 2}], "b": 1})


def test_an_untouched_chain_verifies() -> None:
    assert verify_chain(_chain([{"to": "RUNNING"}, {"to": "SUCCESS"}])) is None


def test_an_edited_event_breaks_the_chain_at_that_event() -> None:
    rows = _chain([{"to": "RUNNING"}, {"to": "FAILED"}, {"to": "RESTARTED"}])
    seq, prev, digest, event = rows[1]
    rows[1] = (seq, prev, digest, {**event, "to": "SUCCESS"})

    broken = verify_chain(rows)

    assert broken is not None and broken.seq == 2 and "content" in broken.reason


def test_a_deleted_event_breaks_the_chain_with_a_gap() -> None:
    rows = _chain([{"to": "RUNNING"}, {"to": "FAILED"}, {"to": "RESTARTED"}])
    del rows[1]

    broken = verify_chain(rows)

    assert broken is not None and broken.seq == 3


def test_a_key_id_is_derived_from_the_secret_and_reveals_nothing_of_it() -> None:
    key = AuditKey.from_secret(b"a" * 32)

    assert key == AuditKey.from_secret(b"a" * 32) and key.key_id != AuditKey.from_secret(b"b" * 32).key_id
    assert "aaaa" not in repr(key)


def test_an_event_mac_holds_only_for_its_hash_and_its_key() -> None:
    key, other = AuditKey.from_secret(b"a" * 32), AuditKey.from_secret(b"b" * 32)
    keys = {key.key_id: key}
    mac = event_mac(key, "1" * 64)

    assert event_mac_problem(keys, key.key_id, mac, "1" * 64, require=True) is None
    assert "does not match" in str(event_mac_problem(keys, key.key_id, mac, "2" * 64, require=True))
    assert "not configured" in str(event_mac_problem(keys, other.key_id, mac, "1" * 64, require=True))
    assert "no MAC" in str(event_mac_problem(keys, None, None, "1" * 64, require=True))
    assert event_mac_problem(keys, None, None, "1" * 64, require=False) is None


def test_a_head_mac_covers_the_chain_length() -> None:
    key = AuditKey.from_secret(b"a" * 32)

    assert head_mac(key, "c", 3, "1" * 64) != head_mac(key, "c", 2, "1" * 64)
