"""Execution SLAs: the earliest MAX_DURATION deadline of an execution, for the sweeper to enforce.

Revision ID: 0003
"""

from alembic import op

revision = "0003"
down_revision = "0002"

_UP = """
ALTER TABLE executions ADD COLUMN sla_due_at TIMESTAMP WITH TIME ZONE;
ALTER TABLE executions ADD COLUMN sla JSONB;
CREATE INDEX ix_executions_sla_due ON executions (sla_due_at) WHERE sla_due_at IS NOT NULL;
"""

_DOWN = """
DROP INDEX ix_executions_sla_due;
ALTER TABLE executions DROP COLUMN sla;
ALTER TABLE executions DROP COLUMN sla_due_at;
"""


def upgrade() -> None:
    op.execute(_UP)


def downgrade() -> None:
    op.execute(_DOWN)
