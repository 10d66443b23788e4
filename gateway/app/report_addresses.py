"""Report addresses: mail to spam-report@ (not-spam@, virus-report@) of any accepted
domain is a user's report about another mail, recorded and not delivered.

The hook runs before the pipeline (gateway/smtp/intake.py calls it): it takes the
report recipients out of the envelope, records one report each
(gateway/store/reports.py), and lets the rest of the mail, if any, go on.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from datetime import UTC, datetime

from gateway.config import Settings
from gateway.mail.report_parse import references
from gateway.model import Envelope, Reply
from gateway.store import reports
from gateway.store.db import Database
from gateway.store.feedback import HAM, SPAM, VIRUS

log = logging.getLogger(__name__)

RECORDED = Reply(250, "2.0.0", "Ok: report recorded, thank you")


class ReportAddresses:
    def __init__(self, settings: Settings, db: Database) -> None:
        cfg = settings.report
        self.db = db
        self.accepts = settings.accepts
        self.labels = {
            local: label
            for local, label in (
                (cfg.spam_address, SPAM),
                (cfg.ham_address, HAM),
                (cfg.virus_address, VIRUS),
            )
            if local
        }

    def label_of(self, rcpt: str) -> str | None:
        local, _, domain = rcpt.lower().rpartition("@")
        label = self.labels.get(local)
        return label if label and self.accepts(domain) else None

    async def __call__(self, envelope: Envelope, raw: bytes) -> tuple[Envelope, Reply | None]:
        """(the envelope without report recipients, the reply when nothing is left)."""
        if not self.labels:
            return envelope, None
        hits = [(r, label) for r in envelope.rcpt_tos if (label := self.label_of(r))]
        if not hits:
            return envelope, None
        refs = await asyncio.to_thread(references, raw)
        own_id = _message_id(raw)
        now = datetime.now(UTC)
        for rcpt, label in hits:
            row = await self.db.write(
                _record,
                rcpt,
                label,
                envelope.mail_from,
                now,
                refs.queue_ids,
                refs.message_ids,
                own_id,
                refs.original,
            )
            log.info(
                "report to %s from %s: %s %s",
                rcpt,
                envelope.mail_from,
                row["status"],
                row["message_id"] or "",
            )
        rest = tuple(r for r in envelope.rcpt_tos if not self.label_of(r))
        if rest:
            return replace(envelope, rcpt_tos=rest), None
        return envelope, RECORDED


def _record(conn, address, label, reporter, when, queue_ids, message_ids, own_id, original):
    return reports.record_report(
        conn,
        address=address,
        label=label,
        reporter=reporter,
        received_at=when,
        queue_ids=queue_ids,
        message_ids=message_ids,
        report_message_id=own_id,
        original=original,
    )


def _message_id(raw: bytes) -> str | None:
    import email
    import email.policy

    headers = email.message_from_bytes(raw.split(b"\r\n\r\n", 1)[0], policy=email.policy.compat32)
    value = headers.get("Message-ID")
    return value.strip() if value else None
