"""Users, API tokens and role bindings: creation, revocation and authentication, one transaction each.

Passwords are hashed with Argon2id (argon2-cffi); tokens are random and only their SHA-256 is stored.
Every change is audited on the tenant's global chain in the transaction that makes it.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from orchestrator import store
from orchestrator.core.errors import ChorusError, Conflict, NotFound
from orchestrator.core.ids import new_id
from orchestrator.engine.audit_trail import ApiAction, record
from orchestrator.settings import Settings
from orchestrator.store import auth as store_auth
from orchestrator.store.database import Session, read_only, sessionmaker, transaction
from orchestrator.store.errors import IntegrityError
from orchestrator.store.tables import ApiTokenRow, UserRow

#: The roles of DESIGN.md, from most to least powerful; what each may do is `api.permissions`' table.
ROLES = ("admin", "developer", "operator", "approver", "viewer")
TOKEN_PREFIX = "chorus_"
_TOKEN_TOUCH_EVERY = timedelta(minutes=1)  # last_used_at is a hint, not worth a write per request
_VERIFIED_TTL_S = 60.0


class Unauthenticated(ChorusError):
    """Raised when a request carries no usable credentials."""


class PermissionDenied(ChorusError):
    """Raised when the caller is known but not allowed to do this."""

    def __init__(self, permission: str, namespace: str | None) -> None:
        self.permission = permission
        self.namespace = namespace
        self.path = "namespace" if namespace is not None else "permission"
        where = f" in namespace '{namespace}'" if namespace is not None else ""
        super().__init__(f"not allowed: {permission}{where}")


class BindingInvalid(ChorusError):
    """Raised when a role binding names an unknown role."""

    def __init__(self, role: str) -> None:
        self.path = "role"
        super().__init__(f"unknown role '{role}'; roles are {', '.join(ROLES)}")


@dataclass(frozen=True)
class Binding:
    role: str
    namespace_prefix: str = ""  #: '' for every namespace


@dataclass(frozen=True)
class Principal:
    """Who a request acts as, with the role bindings that decide what it may do."""

    actor: str  #: how the audit trail names it: `user:alice`, `token:alice/ci`, `anonymous`
    bindings: tuple[Binding, ...]
    user_id: str | None = None
    username: str | None = None
    token_id: str | None = None


ANONYMOUS_ADMIN = Principal("anonymous", (Binding("admin"),))

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def token_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def parse_binding(text: str) -> Binding:
    """`role` or `role:namespace.prefix` (the CLI's and the API's form)."""
    role, _, prefix = text.partition(":")
    if role not in ROLES:
        raise BindingInvalid(role)
    return Binding(role, prefix.strip())


@dataclass(frozen=True)
class NewToken:
    row: ApiTokenRow
    secret: str  #: shown once; only its hash is kept


class Accounts:
    """Account operations over one database; authentication results are cached briefly in memory."""

    def __init__(self, settings: Settings, sessions: sessionmaker[Session]) -> None:
        self.settings = settings
        self.sessions = sessions
        self._verified: dict[tuple[str, str, str], float] = {}
        self._lock = threading.Lock()

    def _audit(
        self, session: Session, actor: str, action: str, subject: str, detail: Mapping[str, object], client: str = "cli"
    ) -> None:
        event = ApiAction(actor, client, action, "success", 200, subject=subject, detail=dict(detail))
        record(session, self.settings.tenant, event)

    # ---- users ----------------------------------------------------------------------------------

    def create_user(
        self, username: str, password: str | None, bindings: Sequence[Binding], *, actor: str, client: str = "cli"
    ) -> UserRow:
        """A new user with its role bindings; a taken username is a Conflict."""
        for binding in bindings:
            parse_binding(binding.role)
        try:
            with transaction(self.sessions) as session:
                row = store_auth.insert_user(
                    session,
                    UserRow(
                        id=new_id(),
                        username=username,
                        password_hash=hash_password(password) if password else None,
                        disabled=False,
                        created_at=store.utcnow(),
                    ),
                )
                for binding in bindings:
                    store_auth.add_binding(session, row.id, binding.role, binding.namespace_prefix)
                self._audit(session, actor, "user.created", f"user:{username}", {"roles": _show(bindings)}, client)
        except IntegrityError as e:
            raise Conflict(f"user '{username}' already exists") from e
        return row

    def set_bindings(self, username: str, bindings: Sequence[Binding], *, actor: str) -> None:
        for binding in bindings:
            parse_binding(binding.role)
        with transaction(self.sessions) as session:
            user = store_auth.user_by_name(session, username)
            if user is None:
                raise NotFound("user", username)
            store_auth.remove_bindings(session, user.id)
            for binding in bindings:
                store_auth.add_binding(session, user.id, binding.role, binding.namespace_prefix)
            self._audit(session, actor, "user.roles_set", f"user:{username}", {"roles": _show(bindings)})

    def ensure_bootstrap_admin(self) -> None:
        """Create the configured admin (role admin on every namespace) or update its password."""
        username, secret = self.settings.admin_username, self.settings.admin_password
        if username is None or secret is None:
            return
        password = secret.get_secret_value()
        for _ in range(3):  # replicas starting together race on the insert; the loser re-reads
            try:
                with transaction(self.sessions) as session:
                    user = store_auth.user_by_name(session, username)
                    if user is None:
                        user = store_auth.insert_user(
                            session,
                            UserRow(
                                id=new_id(),
                                username=username,
                                password_hash=hash_password(password),
                                disabled=False,
                                created_at=store.utcnow(),
                            ),
                        )
                        self._audit(
                            session, "system:bootstrap", "user.created", f"user:{username}", {"roles": ["admin"]}
                        )
                    elif not _verify(user.password_hash, password):
                        store_auth.set_password_hash(session, user.id, hash_password(password))
                        self._audit(session, "system:bootstrap", "user.password_set", f"user:{username}", {})
                    store_auth.add_binding(session, user.id, "admin", "")
                return
            except IntegrityError:
                continue

    # ---- tokens ---------------------------------------------------------------------------------

    def create_token(
        self, username: str, name: str, *, expires_in: timedelta | None, actor: str, client: str = "cli"
    ) -> NewToken:
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = store.utcnow()
        with transaction(self.sessions) as session:
            user = store_auth.user_by_name(session, username)
            if user is None:
                raise NotFound("user", username)
            row = store_auth.insert_token(
                session,
                ApiTokenRow(
                    id=new_id(),
                    user_id=user.id,
                    name=name,
                    token_hash=token_hash(secret),
                    created_at=now,
                    expires_at=now + expires_in if expires_in else None,
                    revoked_at=None,
                    last_used_at=None,
                ),
            )
            detail = {
                "name": name,
                "user": username,
                "expires_at": store.iso(row.expires_at) if row.expires_at else None,
            }
            self._audit(session, actor, "token.created", f"token:{row.id}", detail, client)
        return NewToken(row, secret)

    def revoke_token(self, token_id: str, *, actor: str, owner_id: str | None = None, client: str = "cli") -> None:
        """Revoke a token; with `owner_id`, only that user's own tokens (others are NotFound)."""
        with transaction(self.sessions) as session:
            row = store_auth.token_by_id(session, token_id)
            if row is None or (owner_id is not None and row.user_id != owner_id):
                raise NotFound("token", token_id)
            store_auth.revoke_token(session, token_id, store.utcnow())
            self._audit(session, actor, "token.revoked", f"token:{token_id}", {"name": row.name}, client)

    def list_tokens(self, username: str | None = None) -> list[tuple[ApiTokenRow, str]]:
        """Tokens (of one user, or all) with their owner's username."""
        with read_only(self.sessions) as session:
            user_id = None
            if username is not None:
                user = store_auth.user_by_name(session, username)
                if user is None:
                    raise NotFound("user", username)
                user_id = user.id
            names = {u.id: u.username for u in store_auth.users(session)}
            return [(t, names.get(t.user_id, "?")) for t in store_auth.tokens(session, user_id)]

    # ---- authentication -------------------------------------------------------------------------

    def authenticate_basic(self, username: str, password: str) -> Principal | None:
        with read_only(self.sessions) as session:
            user = store_auth.user_by_name(session, username)
            if user is None or user.disabled:
                # Spend an Argon2 verification anyway: an unknown user must not answer faster than a known one.
                _verify(_unknown_user_hash(), password)
                return None
            if not self._password_ok(user, password):
                return None
            return _principal(session, user, f"user:{user.username}")

    def authenticate_bearer(self, secret: str) -> Principal | None:
        now = store.utcnow()
        with read_only(self.sessions) as session:
            token = store_auth.token_by_hash(session, token_hash(secret))
            if token is None or token.revoked_at is not None or (token.expires_at and token.expires_at <= now):
                return None
            user = store_auth.user_by_id(session, token.user_id)
            if user is None or user.disabled:
                return None
            principal = _principal(session, user, f"token:{user.username}/{token.name}", token_id=token.id)
            stale = token.last_used_at is None or token.last_used_at < now - _TOKEN_TOUCH_EVERY
        if stale:
            with transaction(self.sessions) as session:
                store_auth.touch_token(session, token.id, now)
        return principal

    def _password_ok(self, user: UserRow, password: str) -> bool:
        """Argon2 costs tens of milliseconds by design; a verified (hash, password) pair is remembered briefly."""
        if user.password_hash is None:
            return False
        key = (user.id, user.password_hash, hashlib.sha256(password.encode("utf-8")).hexdigest())
        now = time.monotonic()
        with self._lock:
            seen = self._verified.get(key)
            if seen is not None and now - seen < _VERIFIED_TTL_S:
                return True
        if not _verify(user.password_hash, password):
            return False
        with self._lock:
            if len(self._verified) > 10_000:
                self._verified.clear()
            self._verified[key] = now
        return True


@functools.cache
def _unknown_user_hash() -> str:
    return hash_password(secrets.token_urlsafe(16))


def _verify(password_hash: str | None, password: str) -> bool:
    if password_hash is None:
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _principal(session: Session, user: UserRow, actor: str, *, token_id: str | None = None) -> Principal:
    bindings = tuple(Binding(b.role, b.namespace_prefix) for b in store_auth.bindings_of(session, user.id))
    return Principal(actor, bindings, user_id=user.id, username=user.username, token_id=token_id)


def _show(bindings: Sequence[Binding]) -> list[str]:
    return [f"{b.role}:{b.namespace_prefix}" if b.namespace_prefix else b.role for b in bindings]
