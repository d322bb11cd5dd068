"""Notification outbox: a notification task's request, written in the transaction that ends its task run.

One row per idempotency key (one logical task run): a redelivered or re-applied attempt that succeeds again
finds the row taken. `due_at` is when anyone may (re)send it: the finisher sets it a lease ahead (it sends
right after commit), the sweeper sends rows whose lease ran out, a retryable failure pushes it back.

Revision ID: 0014
"""

from alembic import op

revision = "0014"
down_revision = "0013"

_UP = """
CREATE TABLE notification_outbox (
    id VARCHAR(64) PRIMARY KEY,
    tenant VARCHAR(64) NOT NULL,
    idempotency_key VARCHAR(128) NOT NULL UNIQUE,
    execution_id VARCHAR(64) NOT NULL,
    task_run_id VARCHAR(512) NOT NULL,
    task_id VARCHAR(256) NOT NULL,
    kind VARCHAR(64) NOT NULL,
    method VARCHAR(16) NOT NULL,
    url TEXT NOT NULL,
    target VARCHAR(512) NOT NULL,
    headers JSONB NOT NULL,
    body BYTEA,
    connect_timeout_s DOUBLE PRECISION NOT NULL,
    read_timeout_s DOUBLE PRECISION NOT NULL,
    status VARCHAR(16) NOT NULL,
    sends INTEGER NOT NULL DEFAULT 0,
    due_at TIMESTAMP WITH TIME ZONE NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL,
    ended_at TIMESTAMP WITH TIME ZONE,
    response_code INTEGER,
    last_error TEXT
);
CREATE INDEX notification_outbox_due ON notification_outbox (due_at) WHERE status = 'PENDING';
CREATE INDEX notification_outbox_execution ON notification_outbox (execution_id);
"""

_DOWN = """
DROP TABLE notification_outbox;
"""


def upgrade() -> None:
    op.execute(_UP)


def downgrade() -> None:
    op.execute(_DOWN)
