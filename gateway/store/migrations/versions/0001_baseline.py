"""baseline: the schema of mailwarden 0.1

Revision ID: 0001
Revises: (none)

The tables that mailwarden 0.1's create_schema made; a database made by it has
these and no version, and `mailwarden db upgrade` counts it as this revision.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "attachment_blobs",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("compressed", sa.Boolean(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sha256"),
    )
    op.create_table(
        "av_policies",
        sa.Column("target", sa.String(length=320), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=True),
        sa.Column("mode", sa.String(length=8), nullable=True),
        sa.Column("keep_original", sa.Boolean(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=255), nullable=True),
        sa.PrimaryKeyConstraint("target"),
    )
    op.create_table(
        "list_entries",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("list", sa.String(length=8), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("value", sa.String(length=320), nullable=False),
        sa.Column("domain", sa.String(length=255), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("added_by", sa.String(length=128), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("source", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("list", "kind", "value", "domain", "source", name="uq_list_entries"),
    )
    op.create_index("ix_list_entries_source", "list_entries", ["source"], unique=False)

    op.create_table(
        "list_imports",
        sa.Column("source", sa.String(length=128), nullable=False),
        sa.Column("list", sa.String(length=8), nullable=False),
        sa.Column("domain", sa.String(length=255), nullable=False),
        sa.Column("file", sa.String(length=1024), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("imported_by", sa.String(length=128), nullable=False),
        sa.Column("entries", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("source"),
    )
    op.create_table(
        "list_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "messages",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("node", sa.String(length=128), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("client_ip", sa.String(length=45), nullable=False),
        sa.Column("client_hostname", sa.String(length=255), nullable=True),
        sa.Column("helo", sa.String(length=255), nullable=True),
        sa.Column("tls", sa.Boolean(), nullable=False),
        sa.Column("mail_from", sa.String(length=512), nullable=False),
        sa.Column("header_from", sa.String(length=998), nullable=True),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("message_id_header", sa.String(length=998), nullable=True),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("smtp_reply", sa.String(length=512), nullable=True),
        sa.Column("virus_found", sa.Boolean(), nullable=False),
        sa.Column("viruses", sa.JSON(), nullable=True),
        sa.Column("av_db_version", sa.String(length=128), nullable=True),
        sa.Column("model_version", sa.String(length=128), nullable=True),
        sa.Column("filters", sa.JSON(), nullable=True),
        sa.Column("timings_ms", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_messages_received_at", "messages", ["received_at"], unique=False)

    op.create_table(
        "refusals",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("client_ip", sa.String(length=45), nullable=False),
        sa.Column("client_hostname", sa.String(length=255), nullable=True),
        sa.Column("helo", sa.String(length=255), nullable=True),
        sa.Column("mail_from", sa.String(length=512), nullable=True),
        sa.Column("rcpt", sa.String(length=512), nullable=True),
        sa.Column("stage", sa.String(length=8), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("reply", sa.String(length=512), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_refusals_at", "refusals", ["at"], unique=False)
    op.create_index("ix_refusals_client_ip", "refusals", ["client_ip"], unique=False)

    op.create_table(
        "attachment_refs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("message_id", sa.String(length=40), nullable=False),
        sa.Column("part_id", sa.String(length=64), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("stored_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("missed_virus", sa.String(length=255), nullable=True),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["sha256"],
            ["attachment_blobs.sha256"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_attachment_refs_sha256", "attachment_refs", ["sha256"], unique=False)
    op.create_index("ix_attachment_refs_stored", "attachment_refs", ["stored_at"], unique=False)

    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("message_id", sa.String(length=40), nullable=False),
        sa.Column("rcpt", sa.String(length=512), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("details", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_feedback_created", "feedback", ["created_at"], unique=False)
    op.create_index("ix_feedback_message", "feedback", ["message_id"], unique=False)

    op.create_table(
        "quarantine",
        sa.Column("id", sa.String(length=48), nullable=False),
        sa.Column("message_id", sa.String(length=40), nullable=False),
        sa.Column("domain", sa.String(length=255), nullable=False),
        sa.Column("rcpts", sa.JSON(), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("decided_by", sa.String(length=255), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_quarantine_domain_status", "quarantine", ["domain", "status"], unique=False)
    op.create_index("ix_quarantine_message", "quarantine", ["message_id"], unique=False)

    op.create_table(
        "recipients",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("message_id", sa.String(length=40), nullable=False),
        sa.Column("rcpt", sa.String(length=512), nullable=False),
        sa.Column("domain", sa.String(length=255), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("spam", sa.Boolean(), nullable=False),
        sa.Column("symbols", sa.JSON(), nullable=True),
        sa.Column("reasons", sa.JSON(), nullable=True),
        sa.Column("av_enabled", sa.Boolean(), nullable=True),
        sa.Column("av_mode", sa.String(length=16), nullable=True),
        sa.Column("virus_found", sa.Boolean(), nullable=False),
        sa.Column("cleaned", sa.Boolean(), nullable=False),
        sa.Column("original_kept", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("quarantine_id", sa.String(length=40), nullable=True),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_recipients_domain_status", "recipients", ["domain", "status"], unique=False)
    op.create_index("ix_recipients_message", "recipients", ["message_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_recipients_message", table_name="recipients")
    op.drop_index("ix_recipients_domain_status", table_name="recipients")

    op.drop_table("recipients")
    op.drop_index("ix_quarantine_message", table_name="quarantine")
    op.drop_index("ix_quarantine_domain_status", table_name="quarantine")

    op.drop_table("quarantine")
    op.drop_index("ix_feedback_message", table_name="feedback")
    op.drop_index("ix_feedback_created", table_name="feedback")

    op.drop_table("feedback")
    op.drop_index("ix_attachment_refs_stored", table_name="attachment_refs")
    op.drop_index("ix_attachment_refs_sha256", table_name="attachment_refs")

    op.drop_table("attachment_refs")
    op.drop_index("ix_refusals_client_ip", table_name="refusals")
    op.drop_index("ix_refusals_at", table_name="refusals")

    op.drop_table("refusals")
    op.drop_index("ix_messages_received_at", table_name="messages")

    op.drop_table("messages")
    op.drop_table("list_state")
    op.drop_table("list_imports")
    op.drop_index("ix_list_entries_source", table_name="list_entries")

    op.drop_table("list_entries")
    op.drop_table("av_policies")
    op.drop_table("attachment_blobs")
