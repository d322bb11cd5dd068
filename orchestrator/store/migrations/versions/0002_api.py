"""Indexes for the HTTP API's searches: executions by start date and labels, the audit trail by time and actor.

Revision ID: 0002
"""

from alembic import op

revision = "0002"
down_revision = "0001"

_UP = """
CREATE INDEX ix_executions_created ON executions (tenant, created_at);
CREATE INDEX ix_executions_labels ON executions USING gin (labels jsonb_path_ops);
CREATE INDEX ix_audit_events_at ON audit_events (at);
CREATE INDEX ix_audit_events_actor ON audit_events (actor);
CREATE INDEX ix_api_tokens_user ON api_tokens (user_id);
CREATE INDEX ix_log_lines_namespace_at ON log_lines (namespace, at);
"""

_DOWN = """
DROP INDEX ix_log_lines_namespace_at;
DROP INDEX ix_api_tokens_user;
DROP INDEX ix_audit_events_actor;
DROP INDEX ix_audit_events_at;
DROP INDEX ix_executions_labels;
DROP INDEX ix_executions_created;
"""


def upgrade() -> None:
    op.execute(_UP)


def downgrade() -> None:
    op.execute(_DOWN)
