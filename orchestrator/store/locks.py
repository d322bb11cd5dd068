"""Every PostgreSQL advisory lock of Chorus: its key and what it serialises, in one place.

All locks are transaction-scoped (`pg_advisory_xact_lock`): they end with the caller's transaction, so a
crashed process never leaves one behind. Two key spaces never meet: the fixed keys below are 64-bit
constants ("Chorus" then a number) above any 32-bit `hashtext`, and keyed locks hash a prefixed text
(`hashtext` or `hashtextextended` with its own seed), so a flow, a budget and a request key cannot share a lock.
"""

from __future__ import annotations

from sqlalchemy import Connection, text
from sqlalchemy.orm import Session

#: Serialises concurrent `chorus migrate` / `chorus local` starts on one database (Alembic upgrades).
MIGRATION_LOCK_KEY = 0x43686F7275730001
#: One sweeper pass (timeouts, due retries, SLAs, stale runs) at a time among controller replicas.
SWEEPER_LOCK_KEY = 0x43686F7275730002
#: One scheduler tick at a time among replicas; trigger control (enable, unlock, backfill) waits for it.
SCHEDULER_LOCK_KEY = 0x43686F7275730003


def try_advisory_lock(session: Session, key: int) -> bool:
    """Take a fixed-key lock without waiting; False when another transaction holds it."""
    return bool(session.scalar(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": key}))


def wait_for_advisory_lock(session: Session, key: int) -> None:
    """Take a fixed-key lock, waiting for its holder's transaction to end."""
    session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})


def lock_migrations(connection: Connection) -> None:
    """Take the migration lock on a bare connection (Alembic runs outside an ORM session)."""
    connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK_KEY})


def lock_flow_revisions(session: Session, tenant: str, namespace: str, flow_id: str) -> None:
    """Serialise deploys of one flow, so two cannot take the same revision number."""
    session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"{tenant}/{namespace}/{flow_id}"})


def lock_flow_concurrency(session: Session, tenant: str, namespace: str, flow_id: str) -> None:
    """Serialise the concurrency-limit decisions (count running, start or queue) of one flow across replicas."""
    session.execute(
        text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"concurrency:{tenant}/{namespace}/{flow_id}"}
    )


def lock_llm_budget(session: Session, scope_key: str) -> None:
    """Serialise the check-and-reserve of one LLM budget scope, so two calls cannot spend one remainder."""
    # Seed 17, not the idempotency keys' 0: a budget scope and a request key never hash alike by design.
    session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 17))"), {"key": scope_key})


def lock_idempotency_key(session: Session, key: str) -> None:
    """Serialise API requests with one Idempotency-Key: a concurrent second request waits for the first."""
    session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"), {"k": key})
