"""Report addresses: mail to spam-report@ (not-spam@, virus-report@) of any accepted
domain is a user's report about another mail, recorded and not delivered.

Which local parts take reports is per domain: `[report]` gives every domain's, and a
domain's rules (in the database: its admins set them in the console) may change or
turn them off (`report_addresses:`); the policy book in force answers, so every
node follows a change within seconds.

The hook runs before the pipeline (gateway/smtp/intake.py calls it): it takes the
report recipients out of the envelope, records one report each
(gateway/store/reports.py), and lets the rest of the mail, if any, go on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

from gateway.config import Settings
from gateway.domain_policy import PolicyBook
from gateway.mail.report_parse import references
from gateway.model import Envelope, Reply
from gateway.store import reports
from gateway.store.db import Database
from gateway.store.feedback import HAM, SPAM, VIRUS

log = logging.getLogger(__name__)

RECORDED = Reply(250, "2.0.0", "Ok: report recorded, thank you")


LABELS = {"spam": SPAM, "ham": HAM, "virus": VIRUS}


class ReportAddresses:
    def __init__(self, settings: Settings, db: Database, book: Callable[[], PolicyBook]) -> None:
        self.db = db
        self.accepts = settings.accepts
        self.book = book  # the policy book in force (it follows the database's rules)

    def label_of(self, rcpt: str) -> str | None:
        local, _, domain = rcpt.lower().rpartition("@")
        if not self.accepts(domain):
            return None
        kind = self.book().for_domain(domain).report_kind(local)
        return None if kind is None else LABELS[kind]

    async def __call__(self, envelope: Envelope, raw: bytes) -> tuple[Envelope, Reply | None]:
        """(the envelope without report recipients, the reply when nothing is left)."""
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
