"""node status: each node's health and queue as it last reported them

Revision ID: 0008
Revises: 0007
Created: 2026-12-07 16:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "node_status",
        sa.Column("node", sa.String(length=128), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("clamd", sa.String(length=16), nullable=True),
        sa.Column("redis", sa.String(length=16), nullable=True),
        sa.Column("next_hop", sa.String(length=16), nullable=True),
        sa.Column("signatures", sa.JSON(), nullable=True),
        sa.Column("queue", sa.JSON(), nullable=True),
        sa.Column("jobs", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("node"),
    )


def downgrade() -> None:
    op.drop_table("node_status")
