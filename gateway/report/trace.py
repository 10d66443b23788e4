"""Message tracking from the books: the whole life of a mail, from the ledger alone.

One query layer for `mailwarden trace` and, later, the console: find messages by
queue id, Message-ID, sender or recipient (and refusals at MAIL/RCPT by sender,
recipient or client), then gather each message's session, every filter's symbols
and facts, the decision per recipient, each delivery attempt with the next hop's
reply, quarantine items and feedback, with a timeline in time order.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.engine import Connection, Engine

from gateway.store import ledger, quarantine

DEFAULT_LIMIT = 50


@dataclass(frozen=True)
class TraceQuery:
    """What to look for; `ident` is a queue id or a Message-ID (with or without <>)."""

    ident: str | None = None
    sender: str | None = None
    rcpt: str | None = None
    since: datetime | None = None
    limit: int = DEFAULT_LIMIT

    def __post_init__(self) -> None:
        if not (self.ident or self.sender or self.rcpt):
            raise ValueError("give a queue id, a Message-ID, a sender or a recipient")


def trace(engine: Engine, query: TraceQuery) -> dict[str, Any]:
    """{"messages": [life of each matching message, newest first], "refusals": [...]}."""
    with engine.connect() as conn:
        ids = _matching_messages(conn, query)
        messages = [_life(conn, qid) for qid in ids]
        refusals = _matching_refusals(conn, query) if not _is_ident_only(query) else []
    return {"messages": [m for m in messages if m is not None], "refusals": refusals}


def _is_ident_only(query: TraceQuery) -> bool:
    return query.ident is not None and query.sender is None and query.rcpt is None


def _matching_messages(conn: Connection, query: TraceQuery) -> list[str]:
    m, r = ledger.messages, ledger.recipients
    stmt = select(m.c.id).order_by(m.c.received_at.desc()).limit(query.limit)
    if query.ident:
        ident = query.ident.strip()
        bare = ident.strip("<>")
        stmt = stmt.where(
            or_(
                m.c.id == ident.split(".")[0].upper(),
                m.c.message_id_header == f"<{bare}>",
                m.c.message_id_header == bare,
            )
        )
    if query.sender:
        stmt = stmt.where(m.c.mail_from == query.sender.strip().strip("<>"))
    if query.rcpt:
        stmt = stmt.where(
            m.c.id.in_(select(r.c.message_id).where(r.c.rcpt == query.rcpt.strip().strip("<>")))
        )
    if query.since:
        stmt = stmt.where(m.c.received_at >= query.since)
    return [row[0] for row in conn.execute(stmt)]


def _matching_refusals(conn: Connection, query: TraceQuery) -> list[dict[str, Any]]:
    f = ledger.refusals
    stmt = select(f).order_by(f.c.at.desc()).limit(query.limit)
    if query.sender:
        stmt = stmt.where(f.c.mail_from == query.sender.strip().strip("<>"))
    if query.rcpt:
        stmt = stmt.where(f.c.rcpt == query.rcpt.strip().strip("<>"))
    if query.since:
        stmt = stmt.where(f.c.at >= query.since)
    rows = []
    for row in conn.execute(stmt).mappings():
        out = dict(row)
        out["at"] = _aware(out["at"])
        rows.append(out)
    return rows


def _life(conn: Connection, queue_id: str) -> dict[str, Any] | None:
    m = ledger.messages
    row = conn.execute(select(m).where(m.c.id == queue_id)).mappings().first()
    if row is None:
        return None
    received = _aware(row["received_at"])
    life: dict[str, Any] = {
        "queue_id": row["id"],
        "node": row["node"],
        "received_at": received,
        "decided_at": _aware(row["decided_at"]),
        "session": {
            "client_ip": row["client_ip"],
            "client_hostname": row["client_hostname"],
            "helo": row["helo"],
            "tls": bool(row["tls"]),
        },
        "mail_from": row["mail_from"],
        "header_from": row["header_from"],
        "subject": row["subject"],
        "message_id": row["message_id_header"],
        "size": row["size"],
        "sha256": row["sha256"],
        "outcome": row["outcome"],
        "smtp_reply": row["smtp_reply"],
        "viruses": row["viruses"] or [],
        "av_db_version": row["av_db_version"],
        "model_version": row["model_version"],
        "filters": row["filters"] or {},
        "timings_ms": row["timings_ms"] or {},
        "recipients": _recipients(conn, queue_id),
        "deliveries": _deliveries(conn, queue_id),
        "quarantine": _quarantine(conn, queue_id),
        "feedback": _feedback(conn, queue_id),
    }
    life["timeline"] = _timeline(life)
    return life


def _recipients(conn: Connection, queue_id: str) -> list[dict[str, Any]]:
    r = ledger.recipients
    stmt = select(r).where(r.c.message_id == queue_id).order_by(r.c.id)
    out = []
    for row in conn.execute(stmt).mappings():
        item = {k: v for k, v in row.items() if k not in ("id", "message_id")}
        item["delivered_at"] = _aware(item["delivered_at"])
        out.append(item)
    return out


def _deliveries(conn: Connection, queue_id: str) -> list[dict[str, Any]]:
    a = ledger.delivery_attempts
    stmt = select(a).where(a.c.message_id == queue_id).order_by(a.c.at, a.c.id)
    out = []
    for row in conn.execute(stmt).mappings():
        item = {k: v for k, v in row.items() if k not in ("id", "message_id")}
        item["at"] = _aware(item["at"])
        out.append(item)
    return out


def _quarantine(conn: Connection, queue_id: str) -> list[dict[str, Any]]:
    q = quarantine.quarantine
    columns = [c for c in q.c if c.name not in ("data", "message_id")]
    stmt = select(*columns).where(q.c.message_id == queue_id).order_by(q.c.id)
    out = []
    for row in conn.execute(stmt).mappings():
        item = dict(row)
        item["created_at"] = _aware(item["created_at"])
        item["decided_at"] = _aware(item["decided_at"])
        out.append(item)
    return out


def _feedback(conn: Connection, queue_id: str) -> list[dict[str, Any]]:
    f = ledger.feedback
    stmt = select(f).where(f.c.message_id == queue_id).order_by(f.c.created_at, f.c.id)
    out = []
    for row in conn.execute(stmt).mappings():
        item = {k: v for k, v in row.items() if k not in ("id", "message_id")}
        item["created_at"] = _aware(item["created_at"])
        out.append(item)
    return out


def _timeline(life: dict[str, Any]) -> list[dict[str, Any]]:
    """Every event of the message in time order, each with one line of text."""
    s = life["session"]
    events: list[dict[str, Any]] = [
        {
            "at": life["received_at"],
            "what": "received",
            "text": f"from {s['client_ip']} ({s['client_hostname'] or 'no PTR'}) "
            f"HELO {s['helo'] or '-'}{', TLS' if s['tls'] else ''}: <{life['mail_from']}> "
            f"to {', '.join(r['rcpt'] for r in life['recipients'])}",
        },
        {
            "at": life["decided_at"],
            "what": "decided",
            "text": f"{life['outcome']}: {life['smtp_reply']}",
        },
    ]
    for r in life["recipients"]:
        reasons = f" ({'; '.join(r['reasons'])})" if r["reasons"] else ""
        events.append(
            {
                "at": life["decided_at"],
                "what": "decision",
                "text": f"{r['rcpt']}: {r['action']} score {r['score']:g}{reasons}",
            }
        )
    for d in life["deliveries"]:
        events.append(
            {
                "at": d["at"],
                "what": f"delivery {d['result']}",
                "text": f"{d['rcpt']} attempt {d['attempt']} via {d['remote']}: {d['reply']}",
            }
        )
    for q in life["quarantine"]:
        events.append(
            {
                "at": q["created_at"],
                "what": "quarantined",
                "text": f"{q['id']} ({q['kind']}) for {', '.join(q['rcpts'])}: {q['reason']}",
            }
        )
        if q["decided_at"] is not None:
            events.append(
                {
                    "at": q["decided_at"],
                    "what": f"quarantine {q['status']}",
                    "text": f"{q['id']} by {q['decided_by'] or 'staff'}",
                }
            )
    for f in life["feedback"]:
        events.append(
            {
                "at": f["created_at"],
                "what": "feedback",
                "text": f"{f['kind']} from {f['source']}"
                + (f" by {f['actor']}" if f["actor"] else "")
                + (f" for {f['rcpt']}" if f["rcpt"] else ""),
            }
        )
    order = {"received": 0, "decided": 1, "decision": 2, "quarantined": 3}
    return sorted(events, key=lambda e: (e["at"] or life["received_at"], order.get(e["what"], 9)))


def _aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; the ledger writes UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)
