"""The sweeper's and admission's queries read only live rows; execution touches become HOT updates.

Every second the sweeper asks for due retries, loops, pauses, SLAs and stale executions, and every
submission of a flow with a concurrency limit counts the flow's active executions: each of these now has a
partial index whose WHERE is exactly the query's own predicate, so its cost follows the live rows, not the
history. `updated_at` leaves every index: `touch_execution` (run on each claim) then only changes an
unindexed column, and with room on the page (fillfactor) PostgreSQL updates the row in place (HOT) instead of
writing a new entry into every index, the labels GIN included. The predicates are frozen literals: they
must stay byte-for-byte what the store's queries render (`store/live.py`), or the planner cannot use them.
A plain CREATE INDEX holds writes off these tables while it builds (about a second per million rows).

Revision ID: 0012
"""

from alembic import op

revision = "0012"
down_revision = "0011"

_LIVE = "state IN ('CREATED', 'QUEUED', 'RUNNING', 'PAUSED', 'RETRYING', 'RESTARTED', 'KILLING')"

_UP = f"""
DROP INDEX ix_executions_state_updated;
CREATE INDEX ix_executions_live ON executions (state) WHERE {_LIVE};
CREATE INDEX ix_executions_flow_live ON executions (tenant, namespace, flow_id, created_at) WHERE {_LIVE};
DROP INDEX ix_executions_sla_due;
CREATE INDEX ix_executions_sla_due ON executions (sla_due_at) WHERE sla_due_at IS NOT NULL AND {_LIVE};
ALTER TABLE executions SET (fillfactor = 85);

DROP INDEX ix_task_runs_retry_due;
CREATE INDEX ix_task_runs_retry_due ON task_runs (retry_at)
    WHERE state IN ('RETRYING', 'RUNNING') AND retry_at IS NOT NULL;
CREATE INDEX ix_task_runs_paused_due ON task_runs (retry_at) WHERE state = 'PAUSED' AND retry_at IS NOT NULL;
ALTER TABLE task_runs SET (fillfactor = 90);
"""

_DOWN = """
ALTER TABLE task_runs RESET (fillfactor);
DROP INDEX ix_task_runs_paused_due;
DROP INDEX ix_task_runs_retry_due;
CREATE INDEX ix_task_runs_retry_due ON task_runs (retry_at) WHERE state = 'RETRYING';

ALTER TABLE executions RESET (fillfactor);
DROP INDEX ix_executions_sla_due;
CREATE INDEX ix_executions_sla_due ON executions (sla_due_at) WHERE sla_due_at IS NOT NULL;
DROP INDEX ix_executions_flow_live;
DROP INDEX ix_executions_live;
CREATE INDEX ix_executions_state_updated ON executions (state, updated_at);
"""


def upgrade() -> None:
    op.execute(_UP)


def downgrade() -> None:
    op.execute(_DOWN)
