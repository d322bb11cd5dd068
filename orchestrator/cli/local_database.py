"""`chorus local`'s embedded PostgreSQL with two roles behind passwords: the owner migrates, a runtime role runs.

The embedded cluster is created with trust authentication, so any process on the machine (a script task
included) could connect as the superuser `postgres` without a password. Before the server, workers or any
flow start, this module gives `postgres` a password, creates the non-superuser runtime role `chorus_app`
(through `chorus migrate`'s own path) and makes every TCP connection prove a password (scram-sha-256).
The passwords live in `<data dir>/postgres/credentials.json` (0600); libpq finds the owner's through
PGPASSFILE, which is how the embedded server's start-up connection keeps working on later runs.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import psycopg

from orchestrator.store import server_admin
from orchestrator.store.database import make_url

logger = logging.getLogger(__name__)

OWNER_ROLE = "postgres"
RUNTIME_ROLE = "chorus_app"
_HBA = """# Written by chorus local: every connection proves a password, so a process on this machine (a script task)
# cannot become the superuser. The passwords are in credentials.json beside this cluster.
host all all 127.0.0.1/32 scram-sha-256
host all all ::1/128 scram-sha-256
"""


@dataclass(frozen=True)
class LocalDatabase:
    """The two URLs of the embedded database: migrations use the owner's, everything else the runtime role's."""

    owner_url: str
    runtime_url: str


def use_credentials(postgres_dir: Path) -> dict[str, str]:
    """Load or create the passwords, and point libpq at the owner's (PGPASSFILE) before the server starts."""
    postgres_dir.mkdir(parents=True, exist_ok=True)
    path = postgres_dir / "credentials.json"
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        stored = {OWNER_ROLE: secrets.token_urlsafe(24), RUNTIME_ROLE: secrets.token_urlsafe(24)}
        _write_private(path, json.dumps(stored) + "\n")
    path.chmod(0o600)
    pgpass = postgres_dir / "pgpass"
    _write_private(pgpass, f"127.0.0.1:*:*:{OWNER_ROLE}:{stored[OWNER_ROLE]}\n")
    os.environ["PGPASSFILE"] = str(pgpass)  # read by libpq in this process; scripts never get it (allow-list env)
    return {OWNER_ROLE: str(stored[OWNER_ROLE]), RUNTIME_ROLE: str(stored[RUNTIME_ROLE])}


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(text)


def lock_down(server_url: str, passwords: dict[str, str]) -> LocalDatabase:
    """Give the superuser its password and require passwords from every client; returns the two URLs."""
    url = make_url(server_url)
    conninfo = f"host={url.host} port={url.port} user={OWNER_ROLE} dbname=postgres"
    with psycopg.connect(conninfo, autocommit=True) as conn:
        server_admin.set_role_password(conn, OWNER_ROLE, passwords[OWNER_ROLE])
        hba = server_admin.hba_file(conn)
        if hba.read_text(encoding="utf-8") != _HBA:
            hba.write_text(_HBA, encoding="utf-8")  # in place: the file keeps the server account as owner
            server_admin.reload_configuration(conn)
            logger.info("embedded PostgreSQL now requires passwords (%s)", hba)
    owner = url.set(username=OWNER_ROLE, password=passwords[OWNER_ROLE])
    runtime = url.set(username=RUNTIME_ROLE, password=passwords[RUNTIME_ROLE])
    return LocalDatabase(owner.render_as_string(hide_password=False), runtime.render_as_string(hide_password=False))
