"""Child executions by parent: a ForEachItem counts its batches' states on every child end, a kill cascades.

Revision ID: 0004
"""

from alembic import op

revision = "0004"
down_revision = "0003"

_UP = """
CREATE INDEX ix_executions_parent_task_run ON executions (parent_task_run_id) WHERE parent_task_run_id IS NOT NULL;
CREATE INDEX ix_executions_parent ON executions (parent_execution_id) WHERE parent_execution_id IS NOT NULL;
"""

_DOWN = """
DROP INDEX ix_executions_parent;
DROP INDEX ix_executions_parent_task_run;
"""


def upgrade() -> None:
    op.execute(_UP)


def downgrade() -> None:
    op.execute(_DOWN)
