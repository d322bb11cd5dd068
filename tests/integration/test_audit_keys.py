"""The keyed audit chain against the issue's attacker: a superuser rewrites an actor, recomputes hashes and head."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from orchestrator import store
from orchestrator.cli import main
from orchestrator.core.audit import AuditKey, chain_hash
from orchestrator.store.database import make_engine, make_sessionmaker, transaction
from tests.harness.services import psycopg_url

KEY = "k" * 40
OLD_KEY = "o" * 40
CHAIN = "exec-under-attack"


@pytest.fixture
def verify(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """`chorus audit verify` in this test reads this test's database."""
    monkeypatch.setenv("CHORUS_DATABASE_URL", database_url)
    yield None


def _append(database_url: str, secret: str | None, count: int = 3) -> None:
    db = make_engine(database_url, pool_size=1)
    key = AuditKey.from_secret(secret.encode()) if secret else None
    try:
        sessions = make_sessionmaker(db, audit_key=key)
        for n in range(count):
            with transaction(sessions) as session:
                store.append_audit(session, CHAIN, actor="user:alice", action="execution.running", subject=None,
                                   payload={"n": n})  # fmt: skip
    finally:
        db.dispose()


def _rewrite(database_url: str, *, seq: int = 2, strip_macs: bool = False, drop_last: bool = False) -> None:
    """What the tester did as a PostgreSQL superuser: triggers off, an actor rewritten, every later hash and
    the head recomputed, so that the plain SHA-256 chain holds again."""
    with psycopg.connect(psycopg_url(database_url), autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        if drop_last:
            conn.execute("DELETE FROM audit_events WHERE chain_key = %s AND seq = (SELECT max(seq) FROM "
                         "audit_events WHERE chain_key = %s)", (CHAIN, CHAIN))  # fmt: skip
        else:
            conn.execute(
                "UPDATE audit_events SET actor = 'user:mallory' WHERE chain_key = %s AND seq = %s", (CHAIN, seq)
            )
        if strip_macs:
            conn.execute("UPDATE audit_events SET key_id = NULL, mac = NULL WHERE chain_key = %s", (CHAIN,))
            conn.execute("UPDATE audit_heads SET key_id = NULL, mac = NULL WHERE chain_key = %s", (CHAIN,))
        rows = conn.execute(
            "SELECT id, seq, at, actor, action, subject, payload FROM audit_events WHERE chain_key = %s ORDER BY seq",
            (CHAIN,),
        ).fetchall()
        prev = "0" * 64
        for row_id, row_seq, at, actor, action, subject, payload in rows:
            digest = chain_hash(prev, store.hashed_event(CHAIN, row_seq, at, actor, action, subject, payload))
            conn.execute("UPDATE audit_events SET prev_hash = %s, hash = %s WHERE id = %s", (prev, digest, row_id))
            prev = digest
        conn.execute("UPDATE audit_heads SET seq = %s, hash = %s WHERE chain_key = %s", (len(rows), prev, CHAIN))
        conn.execute("SET session_replication_role = origin")


def test_without_a_key_the_rewrite_passes_and_verify_says_the_chain_is_only_unkeyed(
    database_url: str, verify: object, capsys: pytest.CaptureFixture[str]
) -> None:
    _append(database_url, None)
    _rewrite(database_url)

    assert main(["audit", "verify", "--chain", CHAIN]) == 0
    assert "unkeyed SHA-256 chain only" in capsys.readouterr().out


def test_with_a_key_a_rewritten_actor_with_recomputed_hashes_and_head_fails_verify(
    database_url: str, verify: object, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CHORUS_AUDIT_KEY", KEY)
    _append(database_url, KEY)
    assert main(["audit", "verify", "--chain", CHAIN]) == 0
    assert "HMAC-SHA256" in capsys.readouterr().out

    _rewrite(database_url, seq=2)

    assert main(["audit", "verify", "--chain", CHAIN]) == 1
    out = capsys.readouterr().out
    assert f'"chain": "{CHAIN}"' in out and '"seq": 2' in out and "MAC does not match" in out


def test_stripping_the_macs_and_recomputing_the_plain_chain_fails_verify(
    database_url: str, verify: object, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CHORUS_AUDIT_KEY", KEY)
    _append(database_url, KEY)

    _rewrite(database_url, seq=1, strip_macs=True)

    assert main(["audit", "verify", "--chain", CHAIN]) == 1
    assert '"seq": 1' in capsys.readouterr().out


def test_dropping_the_newest_event_and_lowering_the_head_fails_verify(
    database_url: str, verify: object, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CHORUS_AUDIT_KEY", KEY)
    _append(database_url, KEY)

    _rewrite(database_url, drop_last=True)

    assert main(["audit", "verify", "--chain", CHAIN]) == 1
    assert "head: MAC does not match" in capsys.readouterr().out


def test_events_signed_with_a_retired_key_verify_after_a_rotation(
    database_url: str, verify: object, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _append(database_url, OLD_KEY, count=2)
    _append(database_url, KEY, count=2)
    monkeypatch.setenv("CHORUS_AUDIT_KEY", KEY)

    assert main(["audit", "verify", "--chain", CHAIN]) == 1  # the old key is unknown: its MACs cannot be trusted
    assert "not configured" in capsys.readouterr().out
    monkeypatch.setenv("CHORUS_AUDIT_PREVIOUS_KEYS", f'["{OLD_KEY}"]')

    assert main(["audit", "verify", "--chain", CHAIN]) == 0


def test_a_trail_begun_before_the_key_fails_unless_unkeyed_events_are_allowed(
    database_url: str, verify: object, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _append(database_url, None, count=1)
    _append(database_url, KEY, count=1)
    monkeypatch.setenv("CHORUS_AUDIT_KEY", KEY)

    assert main(["audit", "verify", "--chain", CHAIN]) == 1
    assert main(["audit", "verify", "--chain", CHAIN, "--allow-unkeyed"]) == 0
    assert "1 of 2 event(s) have no MAC" in capsys.readouterr().out


def test_a_short_audit_key_is_refused_with_its_variable(
    database_url: str, verify: object, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CHORUS_AUDIT_KEY", "short")

    assert main(["audit", "verify"]) == 2
    assert "CHORUS_AUDIT_KEY" in capsys.readouterr().err


def _delete_chain(database_url: str) -> None:
    with psycopg.connect(psycopg_url(database_url), autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute("DELETE FROM audit_events WHERE chain_key = %s", (CHAIN,))
        conn.execute("DELETE FROM audit_heads WHERE chain_key = %s", (CHAIN,))


def test_a_chain_deleted_whole_passes_verify_but_not_against_a_checkpoint_kept_outside(
    database_url: str, verify: object, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:  # fmt: skip
    monkeypatch.setenv("CHORUS_AUDIT_KEY", KEY)
    _append(database_url, KEY)
    checkpoint = tmp_path / "checkpoint.json"
    assert main(["audit", "checkpoint", "--out", str(checkpoint)]) == 0

    _delete_chain(database_url)

    assert main(["audit", "verify"]) == 0  # nothing in the database remembers the chain
    capsys.readouterr()
    assert main(["audit", "verify", "--checkpoint", str(checkpoint)]) == 1
    assert f'"chain": "{CHAIN}", "seq": 3' in capsys.readouterr().out


def test_a_forged_checkpoint_is_refused(
    database_url: str, verify: object, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:  # fmt: skip
    monkeypatch.setenv("CHORUS_AUDIT_KEY", KEY)
    _append(database_url, KEY)
    checkpoint = tmp_path / "checkpoint.json"
    assert main(["audit", "checkpoint", "--out", str(checkpoint)]) == 0
    document = json.loads(checkpoint.read_text())
    document["heads"][CHAIN] = [1, document["heads"][CHAIN][1]]  # claims a shorter chain was all there was
    checkpoint.write_text(json.dumps(document))

    assert main(["audit", "verify", "--checkpoint", str(checkpoint)]) == 2
    assert "altered" in capsys.readouterr().err
