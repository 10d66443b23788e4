"""queue requests: queue actions addressed to another node

Revision ID: 0009
Revises: 0008
Created: 2026-12-07 18:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "queue_requests",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("node", sa.String(length=128), nullable=False),
        sa.Column("op", sa.String(length=16), nullable=False),
        sa.Column("job", sa.String(length=128), nullable=True),
        sa.Column("requested_by", sa.String(length=128), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ok", sa.Boolean(), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_queue_requests_node_state", "queue_requests", ["node", "state"])


def downgrade() -> None:
    op.drop_index("ix_queue_requests_node_state", table_name="queue_requests")
    op.drop_table("queue_requests")
