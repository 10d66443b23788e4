"""The ledger: one row per message, one per recipient outcome, and later feedback.

The monthly SLA report is computed from these rows alone, so they keep what
the report needs: when a message was received, decided and delivered (delay),
what was judged (spam, virus, cleaned) with every symbol, and feedback that
reveals misses afterwards (a rescan hit, a user's spam report, a release of a
quarantined mail as legitimate).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
)

from gateway.db import metadata

messages = Table(
    "messages",
    metadata,
    Column("id", String(40), primary_key=True),  # the queue id
    Column("node", String(128), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("decided_at", DateTime(timezone=True), nullable=False),
    Column("client_ip", String(45), nullable=False),
    Column("client_hostname", String(255)),
    Column("helo", String(255)),
    Column("tls", Boolean, nullable=False, default=False),
    Column("mail_from", String(512), nullable=False),
    Column("header_from", String(998)),
    Column("subject", Text),
    Column("message_id_header", String(998)),
    Column("size", Integer, nullable=False),
    Column("sha256", String(64), nullable=False),
    # what the SMTP client was told: accepted (250), rejected (5xx), tempfailed (4xx)
    Column("outcome", String(16), nullable=False),
    Column("smtp_reply", String(512)),
    Column("virus_found", Boolean, nullable=False, default=False),
    Column("viruses", JSON),
    Column("av_db_version", String(128)),  # the signature database that scanned it
    Column("model_version", String(128)),  # the classifier that scored it
    Column("filters", JSON),  # per filter: symbols, errors and facts, as evaluated
    Column("timings_ms", JSON),
)
Index("ix_messages_received_at", messages.c.received_at)

recipients = Table(
    "recipients",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("message_id", String(40), ForeignKey("messages.id"), nullable=False),
    Column("rcpt", String(512), nullable=False),
    Column("domain", String(255), nullable=False),
    Column("action", String(16), nullable=False),  # gateway.model.Action
    Column("score", Float, nullable=False),
    Column("spam", Boolean, nullable=False, default=False),  # judged spam
    Column("symbols", JSON),
    Column("reasons", JSON),
    Column("av_enabled", Boolean),
    Column("av_mode", String(16)),
    Column("virus_found", Boolean, nullable=False, default=False),
    Column("cleaned", Boolean, nullable=False, default=False),
    Column("original_kept", Boolean, nullable=False, default=False),
    # pending -> delivered | bounced ; or quarantined | rejected | tempfailed | released
    Column("status", String(16), nullable=False),
    Column("delivered_at", DateTime(timezone=True)),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text),
    Column("quarantine_id", String(40)),
)
Index("ix_recipients_message", recipients.c.message_id)
Index("ix_recipients_domain_status", recipients.c.domain, recipients.c.status)

# Feedback kinds: what a later event says about an earlier verdict.
MISSED_SPAM = "missed_spam"  # delivered, reported as spam
MISSED_VIRUS = "missed_virus"  # delivered, found infected later (rescan)
FALSE_POSITIVE = "false_positive"  # judged spam or virus, was legitimate
CONFIRMED_SPAM = "confirmed_spam"  # a reviewer agreed with a spam verdict
FEEDBACK_KINDS = (MISSED_SPAM, MISSED_VIRUS, FALSE_POSITIVE, CONFIRMED_SPAM)

feedback = Table(
    "feedback",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("message_id", String(40), ForeignKey("messages.id"), nullable=False),
    Column("rcpt", String(512)),  # None: about the message for every recipient
    Column("kind", String(32), nullable=False),
    Column("source", String(32), nullable=False),  # user | abuse | rescan | release
    Column("actor", String(255)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("details", JSON),
)
Index("ix_feedback_message", feedback.c.message_id)
Index("ix_feedback_created", feedback.c.created_at)
