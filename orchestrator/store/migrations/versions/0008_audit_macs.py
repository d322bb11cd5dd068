"""Audit MACs: each event and each chain head carries an HMAC-SHA256 and the id of the key that made it.

Revision ID: 0008
"""

from alembic import op

revision = "0008"
down_revision = "0007"

# Nullable: events written before a key was configured keep no MAC (verify says so). Adding a column
# rewrites no row, so the append-only trigger is not involved.
_UP = """
ALTER TABLE audit_events ADD COLUMN key_id VARCHAR(32), ADD COLUMN mac VARCHAR(64);
ALTER TABLE audit_heads ADD COLUMN key_id VARCHAR(32), ADD COLUMN mac VARCHAR(64);
"""


def upgrade() -> None:
    op.execute(_UP)


def downgrade() -> None:
    raise NotImplementedError("audit MACs must not be dropped: they are what resists a rewrite of the trail")
