"""Alembic environment: runs migrations on the connection `orchestrator.migrate` hands over."""

from __future__ import annotations

from alembic import context

from orchestrator.store.tables import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, transaction_per_migration=True)
with context.begin_transaction():
    context.run_migrations()
