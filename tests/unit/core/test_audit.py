from __future__ import annotations

from orchestrator.core.audit import GENESIS_HASH, canonical_json, chain_hash, verify_chain


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
