"""the books: heartbeats, signature versions, report mails

Revision ID: 0003
Revises: 0002

Heartbeats and signature versions behind the report's availability and freshness,
and the report mails sent to report addresses (gateway/store/availability.py,
gateway/store/reports.py). Created only where missing (a database made by
create_schema on the books branch may hold them already).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if "heartbeats" not in existing:
        op.create_table(
            "heartbeats",
            sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("node", sa.String(length=128), nullable=False),
            sa.Column("at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("accepting", sa.Boolean(), nullable=False),
            sa.Column("next_hop_ok", sa.Boolean(), nullable=True),
            sa.PrimaryKeyConstraint("id"),
        )
        op.create_index("ix_heartbeats_at", "heartbeats", ["at"])
    if "signature_versions" not in existing:
        op.create_table(
            "signature_versions",
            sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("node", sa.String(length=128), nullable=False),
            sa.Column("version", sa.String(length=128), nullable=False),
            sa.Column("db_version", sa.Integer(), nullable=True),
            sa.Column("db_date", sa.DateTime(timezone=True), nullable=True),
            sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
            sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("id"),
        )
        op.create_index("ix_signature_versions_node", "signature_versions", ["node", "last_seen"])
    if "report_mails" not in existing:
        op.create_table(
            "report_mails",
            sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("address", sa.String(length=512), nullable=False),
            sa.Column("domain", sa.String(length=255), nullable=False),
            sa.Column("label", sa.String(length=8), nullable=False),
            sa.Column("reporter", sa.String(length=512), nullable=False),
            sa.Column("report_message_id", sa.String(length=998), nullable=True),
            sa.Column("status", sa.String(length=16), nullable=False),
            sa.Column("message_id", sa.String(length=40), nullable=True),
            sa.Column("detail", sa.Text(), nullable=True),
            sa.Column("original", sa.LargeBinary(), nullable=True),
            sa.PrimaryKeyConstraint("id"),
        )
        op.create_index("ix_report_mails_received", "report_mails", ["received_at"])


def downgrade() -> None:
    op.drop_index("ix_report_mails_received", table_name="report_mails")
    op.drop_table("report_mails")
    op.drop_index("ix_signature_versions_node", table_name="signature_versions")
    op.drop_table("signature_versions")
    op.drop_index("ix_heartbeats_at", table_name="heartbeats")
    op.drop_table("heartbeats")
