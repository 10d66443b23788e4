"""Feedback into the ledger: one way in for every later word on a verdict.

A user's "this was spam", staff releasing a held mail as legitimate, a rescan
that finds a virus in a delivered attachment, a mail forwarded to a report
address: each becomes feedback rows through `add_feedback`, with who and when.

- A label is what the reporter says the mail was: spam, ham or virus. The row's
  `kind` says what that means for the verdict (a missed spam, a false positive...)
  and is derived here, so every writer words it the same way.
- One row per recipient (the report is per recipient and domain).
- Each event once: an event key (a quarantine item, a rescan hit, a report mail's
  Message-ID) is recorded at most once per recipient, and the same label from the
  same person again adds nothing.
- A later label overrides an earlier one for the same mail and recipient: the
  report reads only the latest (`effective_labels`); the table keeps every row,
  so the audit trail has both.
- The report counts feedback in the month the mail was received, whenever it came.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection, Engine

from gateway.store import ledger

SPAM, HAM, VIRUS = "spam", "ham", "virus"
LABELS = (SPAM, HAM, VIRUS)
CONFIRMED_HAM = "confirmed_ham"  # delivered, and said to be legitimate
CONFIRMED_VIRUS = "confirmed_virus"  # flagged as a virus, and said to be one
# what each kind says the mail was
LABEL_OF_KIND = {
    ledger.MISSED_SPAM: SPAM,
    ledger.CONFIRMED_SPAM: SPAM,
    ledger.FALSE_POSITIVE: HAM,
    CONFIRMED_HAM: HAM,
    ledger.MISSED_VIRUS: VIRUS,
    CONFIRMED_VIRUS: VIRUS,
}
FILTERED_ACTIONS = ("quarantine", "reject")


class FeedbackError(Exception):
    """Feedback that cannot be recorded (no such mail, not a recipient): said in words."""


@dataclass
class FeedbackResult:
    message_id: str
    label: str
    recorded: list[dict[str, Any]] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)  # recipients already told this

    def as_json(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "label": self.label,
            "recorded": [
                {"rcpt": r["rcpt"], "kind": r["kind"], "source": r["source"], "actor": r["actor"]}
                for r in self.recorded
            ],
            "duplicates": self.duplicates,
        }


def kind_for(label: str, verdict: dict[str, Any]) -> str:
    """What a label means for one recipient's verdict (a ledger.recipients row)."""
    filtered = verdict["action"] in FILTERED_ACTIONS or bool(verdict["spam"])
    if label == SPAM:
        return ledger.CONFIRMED_SPAM if filtered else ledger.MISSED_SPAM
    if label == HAM:
        return ledger.FALSE_POSITIVE if filtered or verdict["virus_found"] else CONFIRMED_HAM
    if label == VIRUS:
        return CONFIRMED_VIRUS if verdict["virus_found"] else ledger.MISSED_VIRUS
    raise FeedbackError(f"unknown label {label!r} (one of {', '.join(LABELS)})")


def add_feedback(
    conn: Connection,
    message_id: str,
    label: str,
    *,
    source: str,
    actor: str | None = None,
    rcpts: Iterable[str] | None = None,
    when: datetime | None = None,
    event: str | None = None,
    details: dict[str, Any] | None = None,
) -> FeedbackResult:
    """Record `label` for some recipients of a mail (all of them when `rcpts` is None),
    inside the caller's transaction. Raises FeedbackError for an unknown mail or a
    recipient the mail was not for."""
    if label not in LABELS:
        raise FeedbackError(f"unknown label {label!r} (one of {', '.join(LABELS)})")
    when = when or datetime.now(UTC)
    verdicts = {
        r.rcpt.lower(): dict(r._mapping)
        for r in conn.execute(
            select(
                ledger.recipients.c.rcpt,
                ledger.recipients.c.action,
                ledger.recipients.c.spam,
                ledger.recipients.c.virus_found,
            ).where(ledger.recipients.c.message_id == message_id)
        )
    }
    if not verdicts:
        raise FeedbackError(f"{message_id}: no such mail in the ledger")
    wanted = list(verdicts) if rcpts is None else [r.lower() for r in rcpts]
    for rcpt in wanted:
        if rcpt not in verdicts:
            raise FeedbackError(f"{message_id}: {rcpt} is not a recipient of this mail")
    earlier = _rows_of(conn, message_id)
    result = FeedbackResult(message_id, label)
    rows = []
    for rcpt in dict.fromkeys(wanted):
        mine = [r for r in earlier if r["rcpt"] is None or r["rcpt"].lower() == rcpt]
        latest = mine[-1] if mine else None
        seen_event = event is not None and any(
            (r["details"] or {}).get("event") == event for r in mine
        )
        same_again = (
            latest is not None
            and LABEL_OF_KIND.get(latest["kind"]) == label
            and latest["actor"] == actor
        )
        if seen_event or same_again:
            result.duplicates.append(verdicts[rcpt]["rcpt"])
            continue
        row = {
            "message_id": message_id,
            "rcpt": verdicts[rcpt]["rcpt"],
            "kind": kind_for(label, verdicts[rcpt]),
            "source": source[:32],
            "actor": None if actor is None else actor[:255],
            "created_at": when,
            "details": {**(details or {}), **({"event": event} if event else {})},
        }
        if latest is not None and LABEL_OF_KIND.get(latest["kind"]) != label:
            row["details"]["overrides"] = latest["id"]
        rows.append(row)
    if rows:
        conn.execute(ledger.feedback.insert(), rows)
        result.recorded = rows
    return result


def add_feedback_now(engine: Engine, message_id: str, label: str, **kwargs: Any) -> FeedbackResult:
    """`add_feedback` in a transaction of its own (for the CLI and one-off callers)."""
    with engine.begin() as conn:
        return add_feedback(conn, message_id, label, **kwargs)


def find_message(conn: Connection, reference: str) -> str | None:
    """Our queue id, or a Message-ID header (with or without <>), -> our queue id.

    Several mails may share a Message-ID (a resend): the latest received wins."""
    text = reference.strip()
    m = ledger.messages
    found = conn.execute(select(m.c.id).where(m.c.id == text)).first()
    if found is not None:
        return found.id
    bare = text.strip("<>")
    if not bare:
        return None
    row = conn.execute(
        select(m.c.id)
        .where(m.c.message_id_header.in_([f"<{bare}>", bare]))
        .order_by(m.c.received_at.desc())
        .limit(1)
    ).first()
    return None if row is None else row.id


def history(engine: Engine, message_id: str) -> list[dict[str, Any]]:
    """Every feedback row of a mail, oldest first (the audit trail)."""
    with engine.connect() as conn:
        return _rows_of(conn, message_id)


def effective_labels(rows: Iterable[Any]) -> dict[tuple[str, str | None], str]:
    """(message id, recipient lowercased or None) -> the label that counts: the latest.

    `rows` are feedback rows in (created_at, id) order; a row without a recipient
    (older writers) speaks for every recipient and is keyed with None."""
    out: dict[tuple[str, str | None], str] = {}
    for row in rows:
        label = LABEL_OF_KIND.get(row.kind)
        if label is None:
            continue
        rcpt = row.rcpt.lower() if row.rcpt else None
        if rcpt is None:  # speaks for all: later than every per-recipient row so far
            for key in [k for k in out if k[0] == row.message_id]:
                del out[key]
        out[(row.message_id, rcpt)] = label
    return out


def label_for(labels: dict[tuple[str, str | None], str], message_id: str, rcpt: str) -> str | None:
    return labels.get((message_id, rcpt.lower())) or labels.get((message_id, None))


def _rows_of(conn: Connection, message_id: str) -> list[dict[str, Any]]:
    f = ledger.feedback
    return [
        dict(r._mapping)
        for r in conn.execute(
            select(f).where(f.c.message_id == message_id).order_by(f.c.created_at, f.c.id)
        )
    ]
