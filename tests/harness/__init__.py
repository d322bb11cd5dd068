"""Test harness: finds or starts the PostgreSQL and Redis servers the tests use, and makes test databases."""

from tests.harness.services import (
    create_database,
    drop_database,
    postgres_admin_url,
    psycopg_url,
    redis_url,
    stop_throwaway_servers,
    unique_database_name,
)

__all__ = [
    "create_database",
    "drop_database",
    "postgres_admin_url",
    "psycopg_url",
    "redis_url",
    "stop_throwaway_servers",
    "unique_database_name",
]
