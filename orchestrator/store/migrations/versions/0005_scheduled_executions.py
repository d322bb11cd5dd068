"""Executions that start later (Kestra's scheduleDate, retries into a new execution) and their first creation.

Revision ID: 0005
"""

from alembic import op

revision = "0005"
down_revision = "0004"

_UP = """
ALTER TABLE executions ADD COLUMN scheduled_at TIMESTAMP WITH TIME ZONE;
ALTER TABLE executions ADD COLUMN original_created_at TIMESTAMP WITH TIME ZONE;
CREATE INDEX ix_executions_scheduled ON executions (scheduled_at) WHERE state = 'CREATED' AND scheduled_at IS NOT NULL;
"""

_DOWN = """
DROP INDEX ix_executions_scheduled;
ALTER TABLE executions DROP COLUMN original_created_at;
ALTER TABLE executions DROP COLUMN scheduled_at;
"""


def upgrade() -> None:
    op.execute(_UP)


def downgrade() -> None:
    op.execute(_DOWN)
