"""Report mails (to spam-report@ and the like): each one recorded, matched or not.

A matched report becomes feedback on the original (gateway/store/feedback.py) for
the reporter's own copy: the reporter (the envelope sender) must be a recipient of
the original, and the original must be mail for the report address's domain, so
nobody can relabel another domain's or another person's mail. A report that
matches nothing is kept and counted as unmatched in the month it arrived.
"""

from __future__ import annotations

import zlib
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    func,
    insert,
    select,
)
from sqlalchemy.engine import Connection, Engine

from gateway.store import feedback, ledger
from gateway.store.db import metadata

MATCHED, DUPLICATE, UNMATCHED, NOT_RECIPIENT = "matched", "duplicate", "unmatched", "not_recipient"

report_mails = Table(
    "report_mails",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("address", String(512), nullable=False),  # the report address it was sent to
    Column("domain", String(255), nullable=False),
    Column("label", String(8), nullable=False),  # spam | ham | virus
    Column("reporter", String(512), nullable=False),  # the envelope sender
    Column("report_message_id", String(998)),
    Column("status", String(16), nullable=False),  # matched | duplicate | unmatched | ...
    Column("message_id", String(40)),  # the original's queue id, when matched
    Column("detail", Text),
    Column("original", LargeBinary),  # zlib: the reported mail, when attached (for training)
)
Index("ix_report_mails_received", report_mails.c.received_at)


def record_report(
    conn: Connection,
    *,
    address: str,
    label: str,
    reporter: str,
    received_at: datetime,
    queue_ids: list[str],
    message_ids: list[str],
    report_message_id: str | None,
    original: bytes | None,
) -> dict[str, Any]:
    """Match, record the feedback, keep the report row; returns that row (no bytes)."""
    domain = address.rpartition("@")[2].lower()
    reporter = reporter.lower()
    candidates = _candidates(conn, queue_ids, message_ids, domain)
    message_id: str | None = None
    detail: str | None = "no mail of this domain matches"
    status = UNMATCHED
    for qid, rcpts in candidates:
        if reporter not in rcpts:
            status, message_id = NOT_RECIPIENT, qid
            detail = f"{reporter} was not a recipient of {qid}"
            continue
        result = feedback.add_feedback(
            conn,
            qid,
            label,
            source="report-address",
            actor=reporter,
            rcpts=[reporter],
            when=received_at,
            event=f"report:{report_message_id}" if report_message_id else None,
            details={"address": address},
        )
        status = MATCHED if result.recorded else DUPLICATE
        message_id, detail = qid, None
        break
    row = {
        "received_at": received_at,
        "address": address[:512],
        "domain": domain,
        "label": label,
        "reporter": reporter[:512],
        "report_message_id": (report_message_id or "")[:998] or None,
        "status": status,
        "message_id": message_id,
        "detail": detail,
        "original": zlib.compress(original, 6) if original else None,
    }
    conn.execute(insert(report_mails), [row])
    return {k: v for k, v in row.items() if k != "original"}


def _candidates(
    conn: Connection, queue_ids: list[str], message_ids: list[str], domain: str
) -> list[tuple[str, set[str]]]:
    """(queue id, its recipients in `domain`) of the mails referred to, best first."""
    m, r = ledger.messages, ledger.recipients
    found: list[str] = []
    if queue_ids:
        known = set(conn.scalars(select(m.c.id).where(m.c.id.in_(queue_ids))))
        found += [q for q in queue_ids if q in known]
    for mid in message_ids:
        bare = mid.strip().strip("<>")
        rows = conn.execute(
            select(m.c.id)
            .where(m.c.message_id_header.in_([f"<{bare}>", bare]))
            .order_by(m.c.received_at.desc())
        )
        found += [row.id for row in rows if row.id not in found]
    out = []
    for qid in found:
        rcpts = {
            rcpt.lower()
            for rcpt in conn.scalars(
                select(r.c.rcpt).where(r.c.message_id == qid, r.c.domain == domain)
            )
        }
        if rcpts:
            out.append((qid, rcpts))
    return out


def unmatched_by_domain(
    engine: Engine, start: datetime, end: datetime
) -> dict[str, dict[str, int]]:
    """domain -> {"unmatched_reports": n} for report mails of [start, end) that matched
    no mail (or not one the reporter received)."""
    rm = report_mails
    query = (
        select(rm.c.domain, func.count())
        .where(
            rm.c.received_at >= start,
            rm.c.received_at < end,
            rm.c.status.in_((UNMATCHED, NOT_RECIPIENT)),
        )
        .group_by(rm.c.domain)
    )
    with engine.connect() as conn:
        return {row[0]: {"unmatched_reports": int(row[1])} for row in conn.execute(query)}


def originals(engine: Engine, start: datetime, end: datetime) -> list[tuple[str, bytes]]:
    """(label, original bytes) of matched reports of [start, end) that carried one."""
    rm = report_mails
    query = select(rm.c.label, rm.c.original).where(
        rm.c.received_at >= start,
        rm.c.received_at < end,
        rm.c.status.in_((MATCHED, DUPLICATE)),
        rm.c.original.is_not(None),
    )
    with engine.connect() as conn:
        return [(row.label, zlib.decompress(row.original)) for row in conn.execute(query)]
