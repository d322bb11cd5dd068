"""The namespace KV store with Kestra's value typing; each write is one transaction with its audit event.

A value arrives as a JSON (or Ion-like) literal, as Kestra's clients send it: `"hello"` is a STRING,
`42` a NUMBER, `true` a BOOLEAN, `{...}`/`[...]` JSON, bare `2024-01-01` a DATE, bare
`2024-01-01T10:00:00Z` a DATETIME, and `"PT5M"` a DURATION.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any

from orchestrator import store
from orchestrator.core import json_text
from orchestrator.core.durations import parse_duration
from orchestrator.core.errors import ChorusError, NotFound
from orchestrator.engine.audit_trail import ApiAction, record
from orchestrator.store import kv as store_kv
from orchestrator.store.database import Session, read_only, sessionmaker, transaction
from orchestrator.store.tables import KeyValueRow

_KEY = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._-]{0,511}$")
#: As a flow's namespace (`core.parse.NAMESPACE`): no empty name between dots, no `_files` (storage directories).
_NAMESPACE = re.compile(r"^(?=.{1,256}$)[a-zA-Z0-9][a-zA-Z0-9_-]*(?:\.(?!_files(?:\.|$))[a-zA-Z0-9_-]+)*$")
_SYMBOL = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")  # an Ion symbol: Kestra reads it as a string
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DURATION_TEXT = re.compile(r"^[-+]?P", re.IGNORECASE)


class ValueInvalid(ChorusError):
    """Raised when a KV key, namespace, value or header cannot be used."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        super().__init__(f"{path}: {message}")


class KeyExpired(ChorusError):
    """Raised when a KV entry exists but its time to live has passed."""

    def __init__(self, namespace: str, key: str) -> None:
        self.path = "key"
        super().__init__(f"key '{key}' in namespace '{namespace}' has expired")


@dataclass(frozen=True)
class TypedValue:
    type: str  #: STRING, NUMBER, BOOLEAN, DATETIME, DATE, DURATION or JSON
    value: Any  #: JSON-ready: dates and durations as ISO-8601 strings


def check_namespace(namespace: str) -> str:
    if not _NAMESPACE.match(namespace):
        raise ValueInvalid(
            "namespace",
            "must be names (letters, digits, '_', '-') joined by single dots, none `_files` (at most 256 characters)",
        )
    return namespace


def check_key(key: str) -> str:
    if not _KEY.match(key):
        raise ValueInvalid("key", "must start with a letter or digit, then letters, digits, '.', '_' or '-'")
    return key


def _check_storable(value: Any) -> None:
    # PostgreSQL's JSONB holds neither U+0000 nor non-finite numbers.
    if isinstance(value, str) and "\x00" in value:
        raise ValueInvalid("body", "text values cannot contain the NUL character")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueInvalid("body", "Invalid JSON value: numbers must be finite")
    if isinstance(value, dict):
        for k, v in value.items():
            _check_storable(k)
            _check_storable(v)
    elif isinstance(value, list):
        for v in value:
            _check_storable(v)


def _refuse_constant(name: str) -> Any:
    raise ValueError(name)


def typed_value(text: str) -> TypedValue:
    """Kestra's typing of a KV body literal; anything else is a ValueInvalid on `body`."""
    literal = text.strip()
    if not literal:
        raise ValueInvalid("body", "Invalid JSON value: the body is empty")
    try:
        value = json_text.loads(literal, parse_constant=_refuse_constant)
    except ValueError:  # JsonTooDeep too: a bare literal, as any other text that is not JSON
        return _bare(literal)
    _check_storable(value)
    if isinstance(value, bool):
        return TypedValue("BOOLEAN", value)
    if isinstance(value, int | float):
        return TypedValue("NUMBER", value)
    if isinstance(value, str):
        if _DURATION_TEXT.match(value):
            try:
                parse_duration(value)
            except ValueError:
                return TypedValue("STRING", value)
            return TypedValue("DURATION", value)
        return TypedValue("STRING", value)
    if isinstance(value, dict | list):
        return TypedValue("JSON", value)
    raise ValueInvalid("body", "Invalid JSON value: null cannot be stored")


def _bare(literal: str) -> TypedValue:
    if _DATE.match(literal):
        try:
            return TypedValue("DATE", date.fromisoformat(literal).isoformat())
        except ValueError:
            pass
    else:
        try:
            moment = datetime.fromisoformat(literal.replace("Z", "+00:00"))
        except ValueError:
            moment = None
        if moment is not None and moment.tzinfo is not None and "T" in literal:
            return TypedValue("DATETIME", store.iso(moment))
    if _SYMBOL.match(literal) and literal not in ("null", "nan"):
        return TypedValue("STRING", literal)
    raise ValueInvalid("body", 'Invalid JSON value: send a JSON literal such as "text", 42, true or {...}')


_MAX_TTL = timedelta(days=36500)


def parse_ttl(text: str | None) -> timedelta | None:
    if text is None or not text.strip():
        return None
    try:
        ttl = parse_duration(text)
    except ValueError as e:
        raise ValueInvalid("ttl", str(e)) from None
    if ttl <= timedelta(0):
        raise ValueInvalid("ttl", "must be a positive duration")
    if ttl > _MAX_TTL:
        # An expiry past year 9999 cannot be stored (it was an OverflowError, a 500); a century is forever enough.
        raise ValueInvalid("ttl", f"must be at most {_MAX_TTL.days} days")
    return ttl


class KeyValueStore:
    """Reads and audited writes of namespace KV entries."""

    def __init__(self, tenant: str, sessions: sessionmaker[Session]) -> None:
        self.tenant = tenant
        self.sessions = sessions

    def put(
        self,
        namespace: str,
        key: str,
        value: TypedValue,
        *,
        ttl: timedelta | None,
        description: str | None,
        audit: ApiAction,
    ) -> int:
        """Store a value (replacing any), audited in the same transaction; returns the new revision."""
        with transaction(self.sessions) as session:
            now = store.transaction_now(session)  # a TTL other processes check: by the database's clock
            revision = store_kv.upsert_entry(
                session,
                self.tenant,
                check_namespace(namespace),
                check_key(key),
                value_type=value.type,
                value=value.value,
                description=description,
                expires_at=now + ttl if ttl else None,
                now=now,
            )
            detail = {"type": value.type, "revision": revision, "ttl_s": ttl.total_seconds() if ttl else None}
            record(session, self.tenant, _with(audit, detail), chain=store.namespace_chain_key(self.tenant, namespace))
        return revision

    def get(self, namespace: str, key: str) -> KeyValueRow:
        """The live entry; NotFound when missing, KeyExpired (Kestra's 410) when past its TTL."""
        with read_only(self.sessions) as session:
            row = store_kv.get_entry(session, self.tenant, namespace, key)
            now = store.db_now(session) if row is not None and row.expires_at is not None else None
        if row is None:
            raise NotFound("key", f"{namespace}/{key}")
        if row.expires_at is not None and now is not None and row.expires_at <= now:
            raise KeyExpired(namespace, key)
        return row

    def entries(self, namespace: str) -> list[KeyValueRow]:
        with read_only(self.sessions) as session:
            return list(store_kv.entries(session, self.tenant, namespace, now=store.db_now(session)))

    def delete(self, namespace: str, key: str, *, audit: ApiAction) -> bool:
        """Remove an entry (expired ones too); False when there was none. Audited either way."""
        with transaction(self.sessions) as session:
            deleted = store_kv.delete_entry(session, self.tenant, namespace, key)
            chain = store.namespace_chain_key(self.tenant, namespace)
            record(session, self.tenant, _with(audit, {"deleted": deleted}), chain=chain)
        return deleted


def _with(action: ApiAction, detail: dict[str, Any]) -> ApiAction:
    return replace(action, detail={**(action.detail or {}), **detail})
