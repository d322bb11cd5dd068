"""Action requests: the Idempotency-Key of a replay or restart and the execution it answered with.

Revision ID: 0009
"""

from alembic import op

revision = "0009"
down_revision = "0008"

# Rows live minutes (the API deletes expired ones as it writes); `key` is the SHA-256 of caller, action and key.
_UP = """
CREATE TABLE action_requests (
    key CHAR(64) PRIMARY KEY,
    execution_id VARCHAR(64) NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX ix_action_requests_created_at ON action_requests (created_at);
"""


def upgrade() -> None:
    op.execute(_UP)


def downgrade() -> None:
    op.execute("DROP TABLE action_requests")
