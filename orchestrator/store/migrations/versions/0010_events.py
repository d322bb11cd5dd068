"""Events between flows (an outbox written with the publishing task run) and trigger receipts.

`trigger_receipts` makes every fired trigger idempotent: one row per (source, flow, trigger), where the
source is an event id or a queue message id, written in the transaction that creates the execution.

Revision ID: 0010
"""

from alembic import op

revision = "0010"
down_revision = "0009"

_UP = """
CREATE TABLE events (
    id VARCHAR(64) PRIMARY KEY,
    tenant VARCHAR(64) NOT NULL,
    name VARCHAR(256) NOT NULL,
    namespace VARCHAR(256) NOT NULL,
    flow_id VARCHAR(256) NOT NULL,
    execution_id VARCHAR(64) NOT NULL,
    task_id VARCHAR(256) NOT NULL,
    task_run_id VARCHAR(512) NOT NULL,
    attempt INTEGER NOT NULL,
    payload JSONB,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL,
    delivered_at TIMESTAMP WITH TIME ZONE,
    UNIQUE (task_run_id, attempt)
);
CREATE INDEX events_undelivered ON events (created_at) WHERE delivered_at IS NULL;
CREATE TABLE trigger_receipts (
    tenant VARCHAR(64) NOT NULL,
    source_id VARCHAR(512) NOT NULL,
    namespace VARCHAR(256) NOT NULL,
    flow_id VARCHAR(256) NOT NULL,
    trigger_id VARCHAR(256) NOT NULL,
    execution_id VARCHAR(64) NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL,
    PRIMARY KEY (tenant, source_id, namespace, flow_id, trigger_id)
);
"""

_DOWN = """
DROP TABLE trigger_receipts;
DROP TABLE events;
"""


def upgrade() -> None:
    op.execute(_UP)


def downgrade() -> None:
    op.execute(_DOWN)
