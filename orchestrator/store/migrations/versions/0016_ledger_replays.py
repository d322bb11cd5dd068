"""Replay from the ledger: which execution a replay serves its model and tool calls from, and from which task on
it calls the providers live.

Revision ID: 0016
"""

from alembic import op

revision = "0016"
down_revision = "0014"

_UP = """
CREATE TABLE ledger_replays (
    execution_id VARCHAR(32) PRIMARY KEY,
    source_execution_id VARCHAR(32) NOT NULL,
    live_from VARCHAR(256),
    created_at TIMESTAMP WITH TIME ZONE NOT NULL
);
CREATE INDEX ix_ledger_replays_source ON ledger_replays (source_execution_id);
"""

_DOWN = """
DROP TABLE ledger_replays;
"""


def upgrade() -> None:
    op.execute(_UP)


def downgrade() -> None:
    op.execute(_DOWN)
