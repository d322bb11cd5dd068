"""Least privilege in PostgreSQL: the runtime role's grants after each upgrade, and a check of the runtime connection.

Two roles: the migration role (`CHORUS_MIGRATION_DATABASE_URL`) owns the tables; the runtime role (the user
of `CHORUS_DATABASE_URL`, or `CHORUS_DATABASE_RUNTIME_ROLE`) that the server, workers and scheduler use may
read and write state, only append to the audit trail, and nothing else: no DDL, no superuser. A superuser
or a table owner can switch the append-only trigger off (`session_replication_role`, `DISABLE TRIGGER`);
the runtime role can do neither. Grants run after every upgrade, so tables added later are covered.
"""

from __future__ import annotations

import logging

from sqlalchemy import Connection, Engine, make_url, text
from sqlalchemy.engine import URL

from orchestrator.core.errors import ConfigurationError
from orchestrator.settings import Settings

logger = logging.getLogger(__name__)

#: Tables the runtime role may only read and append to (never UPDATE, DELETE or TRUNCATE).
APPEND_ONLY = ("audit_events",)
#: Heads are upserted, never deleted.
NO_DELETE = ("audit_heads",)

_ROLE_ATTRIBUTES = "NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT"


def migration_url(settings: Settings) -> str:
    """The URL migrations connect with: the migration role's, else the runtime URL (one role, as before)."""
    return settings.migration_database_url or settings.database_url


def runtime_role(settings: Settings) -> str | None:
    """The role to grant to: set explicitly, or the runtime URL's user when migrations use another URL."""
    if settings.database_runtime_role:
        return settings.database_runtime_role
    if settings.migration_database_url is None:
        return None
    runtime_user = make_url(settings.database_url).username
    return runtime_user if runtime_user != make_url(settings.migration_database_url).username else None


def prepare_runtime_role(connection: Connection, role: str, runtime_url: str | None = None) -> None:
    """Create the runtime role if missing (with the runtime URL's password), check it holds no power, grant.

    Run by the migration role, in the migration's transaction, after the upgrade.
    """
    owner = connection.scalar(text("SELECT current_user"))
    if role == owner:
        raise ConfigurationError(
            "CHORUS_DATABASE_RUNTIME_ROLE", f"the runtime role {role!r} is the migration role: it would own the tables"
        )
    password = _password_for(role, runtime_url)
    exists = connection.execute(
        text("SELECT rolsuper, rolbypassrls, rolreplication FROM pg_roles WHERE rolname = :r"), {"r": role}
    ).first()
    quoted = _quote(connection, role)
    if exists is None:
        if password is None:
            raise ConfigurationError(
                "CHORUS_DATABASE_RUNTIME_ROLE", f"role {role!r} does not exist (create it, or put its password in "
                "CHORUS_DATABASE_URL so that `chorus migrate` creates it)",
            )  # fmt: skip
        secret = _quote(connection, password, "quote_literal")  # DDL takes no bind parameters
        connection.execute(text(f"CREATE ROLE {quoted} LOGIN {_ROLE_ATTRIBUTES} PASSWORD {secret}"))
        logger.warning("created the runtime database role %s", role)
    elif any(exists):
        raise ConfigurationError(
            "CHORUS_DATABASE_RUNTIME_ROLE",
            f"the runtime role {role!r} is a superuser or has BYPASSRLS/REPLICATION: it could switch off the audit "
            f"trail's append-only trigger; ALTER ROLE {role} {_ROLE_ATTRIBUTES}",
        )
    elif password is not None:
        connection.execute(text(f"ALTER ROLE {quoted} PASSWORD {_quote(connection, password, 'quote_literal')}"))
    for statement in _grants(quoted):
        connection.execute(text(statement))


def _grants(role: str) -> list[str]:
    statements = [
        # Nobody but the owner creates objects here (PostgreSQL < 15 lets PUBLIC create in `public`).
        "REVOKE CREATE ON SCHEMA public FROM PUBLIC",
        f"GRANT USAGE ON SCHEMA public TO {role}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}",
        f"REVOKE ALL ON alembic_version FROM {role}",
    ]
    statements += [f"REVOKE UPDATE, DELETE, TRUNCATE ON {table} FROM {role}" for table in APPEND_ONLY]
    statements += [f"REVOKE DELETE, TRUNCATE ON {table} FROM {role}" for table in NO_DELETE]
    return statements


def _password_for(role: str, runtime_url: str | None) -> str | None:
    if runtime_url is None:
        return None
    url: URL = make_url(runtime_url)
    return url.password if url.username == role and isinstance(url.password, str) else None


def _quote(connection: Connection, value: str, function: str = "quote_ident") -> str:
    quoted = connection.scalar(text(f"SELECT {function}(:v)"), {"v": value})
    assert isinstance(quoted, str)
    return quoted


def privileges_problem(engine: Engine) -> str | None:
    """What the runtime connection may do that it should not (None when it is least privilege)."""
    with engine.connect() as connection:
        row = connection.execute(
            text(
                "SELECT r.rolsuper, r.rolbypassrls, r.rolreplication, "
                "EXISTS (SELECT 1 FROM pg_tables t WHERE t.tablename = 'audit_events' AND t.tableowner = current_user) "
                "FROM pg_roles r WHERE r.rolname = current_user"
            )
        ).one()
        connection.commit()
    names = [name for name, held in zip(("SUPERUSER", "BYPASSRLS", "REPLICATION"), row[:3], strict=True) if held]
    if names:
        return f"connects as a role with {', '.join(names)}"
    if row[3]:
        return "connects as the owner of the tables (who may ALTER TABLE ... DISABLE TRIGGER)"
    return None


def check_runtime_connection(engine: Engine, settings: Settings) -> None:
    """Refuse a superuser runtime connection beyond loopback; otherwise warn about any excess privilege.

    On loopback (development, `chorus local` with an external URL) a warning suffices; a table owner is
    warned about everywhere, since one-role deployments (managed databases) are common and not superusers.
    """
    problem = privileges_problem(engine)
    if problem is None:
        return
    message = (
        f"CHORUS_DATABASE_URL {problem}: anyone holding it (a leaked URL, a script that reads it) can rewrite the "
        "audit trail. Run migrations with CHORUS_MIGRATION_DATABASE_URL and the server with a runtime role "
        "(docs/security.md)"
    )
    superuser = "SUPERUSER" in problem or "BYPASSRLS" in problem or "REPLICATION" in problem
    if superuser and not settings.loopback_only and not settings.database_allow_privileged:
        raise ConfigurationError("CHORUS_DATABASE_URL", message + "; CHORUS_DATABASE_ALLOW_PRIVILEGED=true overrides")
    logger.warning("%s", message)
