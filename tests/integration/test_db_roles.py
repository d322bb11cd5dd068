"""The runtime database role: what migrations grant it, what it is refused, and the server's check of its URL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import make_url

from orchestrator import store
from orchestrator.core.errors import ConfigurationError
from orchestrator.settings import load_settings
from orchestrator.store.database import make_engine, make_sessionmaker, migrate, transaction
from orchestrator.store.db_roles import check_runtime_connection, privileges_problem, runtime_role
from tests.harness.services import psycopg_url


@pytest.fixture
def runtime_url(database_url: str) -> Iterator[str]:
    """A fresh runtime role (roles are cluster-wide: a unique name, dropped after) granted by `migrate`."""
    role = f"chorus_rt_{uuid.uuid4().hex[:10]}"
    url = make_url(database_url).set(username=role, password="runtime-pw-" + role)
    rendered = url.render_as_string(hide_password=False)
    owner = make_engine(database_url, pool_size=1)
    try:
        migrate(owner, runtime_role=role, runtime_url=rendered)
    finally:
        owner.dispose()
    yield rendered
    with psycopg.connect(psycopg_url(database_url), autocommit=True) as conn:
        conn.execute(f'DROP OWNED BY "{role}"')  # its grants in this database, so that the role can go
        conn.execute(f'DROP ROLE "{role}"')


@pytest.mark.parametrize(
    "statement",
    [
        "SET session_replication_role = replica",
        "UPDATE audit_events SET actor = 'user:mallory'",
        "DELETE FROM audit_events",
        "TRUNCATE audit_events",
        "ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update",
        "CREATE TABLE planted (id int)",
        "DELETE FROM audit_heads",
        "DROP TABLE executions",
    ],
)
def test_the_runtime_role_is_refused_what_would_let_it_rewrite_the_trail(runtime_url: str, statement: str) -> None:
    with psycopg.connect(psycopg_url(runtime_url), autocommit=True) as conn, pytest.raises(
        psycopg.errors.InsufficientPrivilege
    ):  # fmt: skip
        conn.execute(statement)


def test_the_runtime_role_does_the_applications_work(runtime_url: str) -> None:
    db = make_engine(runtime_url, pool_size=1)
    try:
        for _ in range(2):  # the first append inserts the head, the second upserts it
            with transaction(make_sessionmaker(db)) as session:
                store.append_audit(session, "roles-test", actor="system", action="probe", subject=None, payload={})
        with transaction(make_sessionmaker(db)) as session:
            assert [e.seq for e in store.audit_events(session, "roles-test")] == [1, 2]
        assert privileges_problem(db) is None
    finally:
        db.dispose()


def test_a_superuser_runtime_url_is_refused_beyond_loopback_and_only_warned_about_on_it(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    db = make_engine(database_url, pool_size=1)
    try:
        with pytest.raises(ConfigurationError) as refused:
            check_runtime_connection(db, load_settings(database_url=database_url, host="0.0.0.0", auth_enabled=True))
        assert refused.value.name == "CHORUS_DATABASE_URL" and "SUPERUSER" in refused.value.message

        check_runtime_connection(db, load_settings(database_url=database_url, host="127.0.0.1"))
        assert "SUPERUSER" in caplog.text
    finally:
        db.dispose()


def test_the_runtime_role_is_the_runtime_urls_user_when_migrations_have_their_own_url() -> None:
    settings = load_settings(
        database_url="postgresql+psycopg://app:pw@db/chorus",
        migration_database_url="postgresql+psycopg://owner:pw@db/chorus",
    )

    assert runtime_role(settings) == "app"
    assert runtime_role(load_settings(database_url="postgresql+psycopg://app:pw@db/chorus")) is None


def test_a_superuser_runtime_role_is_refused_by_migrate(database_url: str) -> None:
    owner = make_engine(database_url, pool_size=1)
    superuser = make_url(database_url).username or "postgres"
    try:
        with pytest.raises(ConfigurationError) as refused:
            migrate(owner, runtime_role=superuser)
        assert "migration role" in refused.value.message or "superuser" in refused.value.message
    finally:
        owner.dispose()
