"""Idempotent actions: a replay or restart sent twice with one `Idempotency-Key` runs once.

A double-click, a retried request after a dropped connection: the second answer is the first one's
execution. The key is remembered for `KEY_TTL` in PostgreSQL, so it holds across API processes; an
advisory lock on the key makes a concurrent second request wait for the first instead of racing it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import timedelta

from api.errors import QueryInvalid
from orchestrator.store import action_requests as store_action_requests
from orchestrator.store import locks as store_locks
from orchestrator.store.database import Session, sessionmaker, transaction

HEADER = "Idempotency-Key"
KEY_TTL = timedelta(minutes=10)
MAX_KEY_CHARS = 200


def check_key(key: str | None) -> str | None:
    """The header's value, or a 400 naming it when it is empty or too long."""
    if key is None:
        return None
    key = key.strip()
    if not key or len(key) > MAX_KEY_CHARS or not key.isprintable():
        raise QueryInvalid(HEADER, f"must be 1 to {MAX_KEY_CHARS} printable characters")
    return key


def once(sessions: sessionmaker[Session], scope: str, key: str | None, action: Callable[[], str]) -> str:
    """Run `action` (which returns an execution id) once per `scope` and `key`; a repeat gets the same id.

    `scope` names the caller, the action and its target, so one key reused elsewhere is a new request.
    Without a key the action simply runs.
    """
    if key is None:
        return action()
    full = hashlib.sha256(f"{scope}|{key}".encode()).hexdigest()
    with transaction(sessions) as session:
        # Held until this transaction ends: a concurrent request with the same key waits here.
        store_locks.lock_idempotency_key(session, full)
        store_action_requests.forget_requests_older_than(session, KEY_TTL)
        seen = store_action_requests.execution_of_request(session, full)
        if seen is not None:
            return seen
        # The action commits in its own transaction; if it fails, nothing is remembered and a retry runs it.
        execution_id = action()
        store_action_requests.remember_request(session, full, execution_id)
        return execution_id
