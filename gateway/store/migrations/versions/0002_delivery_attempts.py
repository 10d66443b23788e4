"""delivery attempts (each try and its reply, for trace)

Revision ID: 0002
Revises: 0001

This table landed on main shortly before migrations did, so a database made then by
create_schema (no version, counted as 0001) may hold it already: create it only if
it is missing.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if sa.inspect(op.get_bind()).has_table("delivery_attempts"):
        return
    op.create_table(
        "delivery_attempts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("message_id", sa.String(length=40), nullable=False),
        sa.Column("job_id", sa.String(length=48), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("rcpt", sa.String(length=512), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("result", sa.String(length=16), nullable=False),
        sa.Column("reply", sa.Text(), nullable=True),
        sa.Column("remote", sa.String(length=255), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_delivery_attempts_message", "delivery_attempts", ["message_id"])


def downgrade() -> None:
    op.drop_index("ix_delivery_attempts_message", table_name="delivery_attempts")

    op.drop_table("delivery_attempts")
