"""AIAgent conversations: each agent task run's turns, so a re-claimed agent resumes where it was.

Revision ID: 0006
"""

from alembic import op

revision = "0006"
down_revision = "0005"

_UP = """
CREATE TABLE agent_runs (
    task_run_id VARCHAR(32) PRIMARY KEY,
    execution_id VARCHAR(32) NOT NULL,
    task_id VARCHAR(256) NOT NULL,
    attempt INTEGER NOT NULL,
    memory_id VARCHAR(256),
    status VARCHAR(32) NOT NULL,
    conversation JSONB NOT NULL,
    approvals JSONB NOT NULL DEFAULT '{}'::jsonb,
    updated_at TIMESTAMP WITH TIME ZONE NOT NULL
);
CREATE INDEX ix_agent_runs_memory ON agent_runs (execution_id, memory_id, updated_at) WHERE memory_id IS NOT NULL;
"""

_DOWN = """
DROP TABLE agent_runs;
"""


def upgrade() -> None:
    op.execute(_UP)


def downgrade() -> None:
    op.execute(_DOWN)
