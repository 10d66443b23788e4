"""The mail that a period's feedback speaks about, as labelled originals for training.

`mailwarden train --update --from-feedback YYYY-MM` learns from what people said
in that month: user reports (report addresses, `mailwarden feedback`), staff
confirmations and releases from the quarantine. The bytes are the stored originals:
the quarantine copy when the gateway held the mail, else the original forwarded
with a report. Mail whose recipients disagree (one says spam, one ham) teaches
nothing and is left out, as are virus reports and the labels an evaluation or a
rescan wrote (they are not people's judgements).
"""

from __future__ import annotations

import hashlib
import zlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.engine import Engine

from gateway.store import ledger
from gateway.store.feedback import HAM, SPAM, effective_labels
from gateway.store.quarantine import quarantine
from gateway.store.reports import report_mails

NOT_PEOPLE = ("eval", "rescan")


@dataclass
class FeedbackMail:
    """Labelled originals, and what could not be used and why."""

    examples: list[tuple[str, bytes]] = field(default_factory=list)  # (spam|ham, raw)
    skipped: Counter = field(default_factory=Counter)

    def counts(self) -> dict[str, int]:
        labels = Counter(label for label, _ in self.examples)
        return {"spam": labels[SPAM], "ham": labels[HAM], **dict(self.skipped)}


def feedback_mail(engine: Engine, start: datetime, end: datetime) -> FeedbackMail:
    """Originals of the mails that got feedback in [start, end), each once, labelled
    by the latest word about it."""
    f = ledger.feedback
    out = FeedbackMail()
    with engine.connect() as conn:
        ids = set(
            conn.scalars(
                select(f.c.message_id).where(
                    f.c.created_at >= start, f.c.created_at < end, f.c.source.not_in(NOT_PEOPLE)
                )
            )
        )
        rows = conn.execute(
            select(f.c.message_id, f.c.rcpt, f.c.kind)
            .where(f.c.message_id.in_(ids), f.c.source.not_in(NOT_PEOPLE))
            .order_by(f.c.created_at, f.c.id)
        ).all()
        by_message: dict[str, set[str]] = {}
        for (message_id, _), label in effective_labels(rows).items():
            by_message.setdefault(message_id, set()).add(label)
        seen: set[str] = set()
        for message_id in sorted(by_message):
            labels = by_message[message_id]
            if len(labels) > 1:
                out.skipped["recipients_disagree"] += 1
                continue
            label = labels.pop()
            if label not in (SPAM, HAM):
                out.skipped["virus"] += 1
                continue
            raw = _original(conn, message_id)
            if raw is None:
                out.skipped["no_original_kept"] += 1
                continue
            digest = hashlib.sha256(raw).hexdigest()
            if digest in seen:
                out.skipped["duplicate"] += 1
                continue
            seen.add(digest)
            out.examples.append((label, raw))
    return out


def _original(conn, message_id: str) -> bytes | None:
    held = conn.execute(
        select(quarantine.c.data).where(quarantine.c.message_id == message_id).limit(1)
    ).first()
    if held is not None:
        return zlib.decompress(held.data)
    reported = conn.execute(
        select(report_mails.c.original)
        .where(report_mails.c.message_id == message_id, report_mails.c.original.is_not(None))
        .limit(1)
    ).first()
    return None if reported is None else zlib.decompress(reported.original)
