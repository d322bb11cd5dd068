"""Flow triggers with several preconditions: which were met in the current time window.

Revision ID: 0007
"""

from alembic import op

revision = "0007"
down_revision = "0006"

_UP = """
CREATE TABLE flow_trigger_windows (
    tenant VARCHAR(64) NOT NULL,
    namespace VARCHAR(256) NOT NULL,
    flow_id VARCHAR(256) NOT NULL,
    trigger_id VARCHAR(256) NOT NULL,
    window_start TIMESTAMP WITH TIME ZONE NOT NULL,
    window_end TIMESTAMP WITH TIME ZONE NOT NULL,
    met JSONB NOT NULL,
    updated_at TIMESTAMP WITH TIME ZONE NOT NULL,
    PRIMARY KEY (tenant, namespace, flow_id, trigger_id, window_start)
);
"""

_DOWN = """
DROP TABLE flow_trigger_windows;
"""


def upgrade() -> None:
    op.execute(_UP)


def downgrade() -> None:
    op.execute(_DOWN)
