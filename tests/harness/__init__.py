"""Test harness: the one way tests start what they need and wait for it.

services.py finds or starts PostgreSQL and Redis and makes test databases; cluster.py starts `chorus` servers and
workers that die with the test process; stack.py is the e2e session stack built on it; engines.py builds an
Engine; flower.py a session Flower; waiting.py waits on state instead of sleeping; executions.py reads executions.
"""

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
