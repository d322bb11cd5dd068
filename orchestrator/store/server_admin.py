"""Statements on the PostgreSQL server itself (a role's password, pg_hba.conf, reload), for `chorus local`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql


def set_role_password(conn: psycopg.Connection[Any], role: str, password: str) -> None:
    """Give `role` this password (quoted by psycopg, never formatted into the text)."""
    conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(role), password))


def hba_file(conn: psycopg.Connection[Any]) -> Path:
    """Where the server reads its client authentication rules (pg_hba.conf)."""
    row = conn.execute("SHOW hba_file").fetchone()
    assert row is not None
    return Path(str(row[0]))


def reload_configuration(conn: psycopg.Connection[Any]) -> None:
    """Make the server re-read its configuration files (pg_hba.conf included)."""
    conn.execute("SELECT pg_reload_conf()")


def ensure_database(conn: psycopg.Connection[Any], name: str) -> None:
    """Create the database `name` unless the server already has it (CREATE DATABASE has no IF NOT EXISTS)."""
    if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
