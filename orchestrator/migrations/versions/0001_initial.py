"""Initial schema: flows, executions, task runs, logs, append-only audit trail.

Revision ID: 0001
"""

from alembic import op

from orchestrator.tables import Base

revision = "0001"
down_revision = None

# Audit rows are evidence: no UPDATE, DELETE or TRUNCATE, whoever asks.
_APPEND_ONLY = """
CREATE FUNCTION chorus_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit_events is append-only (% refused)', TG_OP USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER audit_events_no_update BEFORE UPDATE OR DELETE ON audit_events
  FOR EACH ROW EXECUTE FUNCTION chorus_audit_append_only();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
  FOR EACH STATEMENT EXECUTE FUNCTION chorus_audit_append_only();
REVOKE UPDATE, DELETE, TRUNCATE ON audit_events FROM PUBLIC;
"""


def upgrade() -> None:
    # The first revision creates the tables from the typed mappings as they stand at this revision;
    # later revisions are explicit ALTERs.
    Base.metadata.create_all(op.get_bind())
    op.execute(_APPEND_ONLY)


def downgrade() -> None:
    raise NotImplementedError("the initial revision is not reversible: audit data must not be dropped")
