"""The ledger: one row per message, one per recipient outcome, and later feedback.

The monthly SLA report is computed from these rows alone, so they keep what
the report needs: when a message was received, decided and delivered (delay),
what was judged (spam, virus, cleaned) with every symbol, and feedback that
reveals misses afterwards (a rescan hit, a user's spam report, a release of a
quarantined mail as legitimate).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

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
    bindparam,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine

from gateway.address import domain_of
from gateway.model import FilterResult
from gateway.store import bulk
from gateway.store.db import batched, metadata

if TYPE_CHECKING:
    from gateway.model import Verdict

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
    Column("auth_account", String(320)),  # logged in with SMTP AUTH (submission port)
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


# Senders refused during the SMTP dialogue (relay attempts, block lists, DNSBL):
# the evidence behind "identify the source, block it, unblock it once clean".
refusals = Table(
    "refusals",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("client_ip", String(45), nullable=False),
    Column("client_hostname", String(255)),
    Column("helo", String(255)),
    Column("mail_from", String(512)),
    Column("rcpt", String(512)),
    Column("stage", String(8), nullable=False),  # mail | rcpt
    Column("source", String(64), nullable=False),  # relay, or the session check's name
    Column("reply", String(512), nullable=False),
)
Index("ix_refusals_at", refusals.c.at)
Index("ix_refusals_client_ip", refusals.c.client_ip)


def refusal_row(
    *,
    client_ip: str,
    client_hostname: str | None,
    helo: str,
    stage: str,
    sender: str,
    rcpt: str | None,
    reply: object,
    source: str,
    at: datetime | None = None,
) -> dict[str, Any]:
    """Evidence of a refused sender (who, when, why), cut to the columns' sizes."""
    return {
        "at": at or datetime.now(UTC),
        "client_ip": client_ip,
        "client_hostname": client_hostname,
        "helo": helo[:255],
        "mail_from": sender[:512],
        "rcpt": rcpt[:512] if rcpt else None,
        "stage": stage,
        "source": source[:64],
        "reply": str(reply)[:512],
    }


def record_refusal(conn: Connection, row: dict[str, Any]) -> None:
    conn.execute(insert(refusals), [row])


# Every delivery attempt, per recipient, with the next hop's reply (or the connection
# error): what `mailwarden trace` shows. recipients.status/last_error keep the latest.
delivery_attempts = Table(
    "delivery_attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("message_id", String(40), nullable=False),  # the queue id
    Column("job_id", String(48), nullable=False),
    Column("kind", String(16), nullable=False),  # message | release
    Column("rcpt", String(512), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("result", String(16), nullable=False),  # delivered | deferred | bounced
    Column("reply", Text),
    Column("remote", String(255)),
)
Index("ix_delivery_attempts_message", delivery_attempts.c.message_id)


_INSERT_ATTEMPTS = insert(delivery_attempts)  # built once: its cache key is kept


def record_attempts_many(conn: Connection, calls: list[tuple]) -> None:
    """`record_attempts` for many jobs: one statement."""
    bulk.executemany(conn, _INSERT_ATTEMPTS, [row for (some,) in calls for row in some])


@batched(record_attempts_many)  # new rows only: order-free within a group
def record_attempts(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Insert the per-recipient outcomes of one delivery attempt."""
    record_attempts_many(conn, [(rows,)])


# --- writing -----------------------------------------------------------------

_DATETIME_COLUMNS = ("received_at", "decided_at", "delivered_at", "created_at")


_JSON_COLUMNS = {
    "messages": ("viruses", "filters", "timings_ms"),
    "recipients": ("symbols", "reasons"),
}
_ALL_JSON_COLUMNS = frozenset(name for names in _JSON_COLUMNS.values() for name in names)


class Encoded(str):
    """A JSON column's value encoded once (encode_json), as SQLAlchemy's JSON type
    would encode it (json.dumps): the spool job carries the text and the insert binds
    it as text, instead of encoding the same structure twice."""


def encoded(value: Any) -> Encoded:
    return Encoded(json.dumps(value))


def encode_json(message: dict[str, Any], rcpt_rows: list[dict[str, Any]]) -> None:
    """Encode the JSON columns of a message's rows in place, once (the intake does it
    in its disk thread, for the spool job and the database writer both)."""
    for row, names in ((message, _JSON_COLUMNS["messages"]),
                       *((r, _JSON_COLUMNS["recipients"]) for r in rcpt_rows)):  # fmt: skip
        for name in names:
            if name in row and not isinstance(row[name], Encoded):
                row[name] = encoded(row[name])


def to_jsonable(row: dict[str, Any]) -> dict[str, Any]:
    """A row with datetimes as ISO strings (so it can ride in a spool job)."""
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()}


def from_jsonable(row: dict[str, Any]) -> dict[str, Any]:
    """A row back from a spool job: datetimes parsed, encoded JSON columns (strings in
    the job; structures in jobs of earlier versions, left as they are) marked again.
    A copy when anything changes; the row itself when nothing does (the intake's rows,
    handed over as made), never changed in place."""
    out = row
    for key in _DATETIME_COLUMNS:
        value = row.get(key)
        if isinstance(value, str):
            out = out if out is not row else dict(row)
            out[key] = datetime.fromisoformat(value)
    for key in _ALL_JSON_COLUMNS:
        value = row.get(key)
        if isinstance(value, str) and not isinstance(value, Encoded):
            out = out if out is not row else dict(row)
            out[key] = Encoded(value)
    return out


def message_row(
    verdict: Verdict,
    outcome: str,
    reply: str,
    node: str,
    decided_at: datetime,
    *,
    digest: bool = True,
) -> dict[str, Any]:
    """The message's ledger row. `digest=False` leaves the sha256 of the message to the
    caller (`add_digest`, in a thread): hashlib lets go of the GIL on anything over
    2 KiB, so on the event loop it hands the loop to a waiting thread."""
    ctx = verdict.ctx
    env = ctx.envelope
    first = verdict.results[next(iter(verdict.results))] if verdict.results else {}
    viruses = sorted({v for d in verdict.decisions if d.virus for v in d.virus.viruses})
    return {
        "id": ctx.queue_id,
        "node": node,
        "received_at": ctx.received_at,
        "decided_at": decided_at,
        "client_ip": env.client_ip,
        "client_hostname": env.client_hostname,
        "helo": env.helo[:255],
        "tls": env.tls,
        "mail_from": env.mail_from[:512],
        "auth_account": env.auth_account,
        "header_from": _first(ctx.header("From"), 998),
        "subject": _first(ctx.header("Subject"), 2000),
        "message_id_header": _first(ctx.header("Message-ID"), 998),
        "size": len(ctx.raw),
        "sha256": hashlib.sha256(ctx.raw).hexdigest() if digest else None,
        "outcome": outcome,
        "smtp_reply": reply[:512],
        "virus_found": bool(viruses),
        "viruses": viruses,
        "av_db_version": _fact(verdict, "antivirus", "db_version"),
        "model_version": _fact(verdict, "classifier", "model_version"),
        "filters": {
            domain: {name: _result_json(r) for name, r in by_filter.items()}
            for domain, by_filter in verdict.results.items()
        }
        if len(verdict.results) > 1
        else {name: _result_json(r) for name, r in first.items()},
        "timings_ms": dict(verdict.timings_ms),
    }


def add_digest(row: dict[str, Any], raw: bytes) -> None:
    """The sha256 that `message_row(..., digest=False)` left to the caller."""
    row["sha256"] = hashlib.sha256(raw).hexdigest()


def recipient_rows(
    verdict: Verdict, status: Mapping[str, str], quarantine_ids: Mapping[str, str]
) -> list[dict[str, Any]]:
    rows = []
    for d in verdict.decisions:
        rows.append(
            {
                "message_id": verdict.ctx.queue_id,
                "rcpt": d.rcpt,
                "domain": domain_of(d.rcpt),
                "action": str(d.action),
                "score": round(d.score, 3),
                "spam": d.spam,
                "symbols": [s.as_json() for s in d.symbols],
                "reasons": list(d.reasons),
                "av_enabled": d.virus.scanned if d.virus else None,
                "av_mode": d.virus.mode if d.virus else None,
                "virus_found": bool(d.virus and d.virus.viruses),
                "cleaned": bool(d.virus and d.virus.cleaned),
                "original_kept": bool(d.virus and d.virus.original_kept),
                "status": status[d.rcpt],
                "attempts": 0,
                "quarantine_id": quarantine_ids.get(d.rcpt),
            }
        )
    return rows


def _first(values: list[str], limit: int) -> str | None:
    return values[0][:limit] if values else None


def _fact(verdict: Verdict, filter_name: str, key: str) -> str | None:
    value = verdict.facts(filter_name).get(key)
    return None if value is None else str(value)[:128]


def _result_json(result: FilterResult) -> dict[str, Any]:
    out: dict[str, Any] = {
        "symbols": [
            {"name": s.name, "options": list(s.options), "factor": s.factor} for s in result.symbols
        ],
    }
    if result.error:
        out["error"] = result.error
    if result.force:
        out["force"] = {"kind": str(result.force.kind), "reason": result.force.reason}
    if result.infections:
        out["infections"] = [
            {"part": i.part_id, "virus": i.virus, "filename": i.filename} for i in result.infections
        ]
    if result.facts:
        out["facts"] = {k: v for k, v in result.facts.items() if _is_plain(v)}
    return out


_PLAIN = (str, int, float, bool, type(None), list, dict, tuple)  # a tuple: no union per call


def _is_plain(value: Any) -> bool:
    return isinstance(value, _PLAIN)


def _text_json_insert(table: Table) -> Any:
    """INSERT INTO table whose JSON columns take their Encoded text as it is."""
    return insert(table).values(
        {name: bindparam(name, type_=Text) for name in _JSON_COLUMNS[table.name]}
    )


# built once each (their cache keys are kept): these run for every message
_INSERTS = {table.name: _text_json_insert(table) for table in (messages, recipients)}


def _insert_rows(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """One executemany for rows of the same columns, their JSON columns bound as text:
    accepted mail's rows come Encoded (for its spool job); the others (refused or
    quarantined mail, seeded rows, a spool job of an earlier version) are encoded here,
    once, as SQLAlchemy's JSON type would (json.dumps; None as 'null'). A JSON column
    a row leaves out is NULL, as an insert without it gives."""
    names = _JSON_COLUMNS[table.name]
    by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        bound = row  # a copy if a column must be encoded: the caller's row stays as it is
        for name in names:
            value = row.get(name, _ABSENT)
            if not isinstance(value, Encoded):
                bound = bound if bound is not row else dict(row)
                bound[name] = None if value is _ABSENT else encoded(value)
        by_columns.setdefault(tuple(bound), []).append(bound)
    for some in by_columns.values():
        bulk.executemany(conn, _INSERTS[table.name], some)


_ABSENT = object()


def record_many(conn: Connection, calls: list[tuple]) -> None:
    """`record` for many messages: one statement per table."""
    _insert_rows(conn, messages, [from_jsonable(message) for message, _ in calls])
    rcpt_rows = [from_jsonable(r) for _, rows in calls for r in rows]
    if rcpt_rows:
        _insert_rows(conn, recipients, rcpt_rows)


@batched(record_many)
def record(
    conn: Connection,
    message: dict[str, Any],
    rcpt_rows: list[dict[str, Any]],
) -> None:
    """Insert a message and its recipient outcomes (inside the caller's transaction)."""
    record_many(conn, [(message, rcpt_rows)])


def has_message(engine: Engine, queue_id: str) -> bool:
    with engine.connect() as conn:
        found = conn.execute(select(messages.c.id).where(messages.c.id == queue_id)).first()
    return found is not None


# one statement, compiled once: delivery outcomes are written for every message
_MARK = (
    update(recipients)
    .where(
        recipients.c.message_id == bindparam("b_message_id"),
        recipients.c.rcpt == bindparam("b_rcpt"),
    )
    .values(
        status=bindparam("b_status"),
        last_error=bindparam("b_last_error"),
        delivered_at=func.coalesce(
            bindparam("b_delivered_at", type_=recipients.c.delivered_at.type),
            recipients.c.delivered_at,
        ),
        attempts=bindparam("b_attempts"),
    )
)


def mark_many(conn: Connection, calls: list[tuple]) -> None:
    """`mark_recipients` for many messages: one statement."""
    params = [
        {
            "b_message_id": queue_id,
            "b_rcpt": rcpt,
            "b_status": status,
            "b_last_error": error,
            "b_delivered_at": when,
            "b_attempts": attempts,
        }
        for queue_id, rcpts, status, when, error, attempts in calls
        for rcpt in rcpts
    ]
    bulk.executemany(conn, _MARK, params)


@batched(mark_many)  # rows committed before delivery began: order-free within a group
def mark_recipients(
    conn: Connection,
    queue_id: str,
    rcpts: list[str],
    status: str,
    when: datetime | None,
    error: str | None,
    attempts: int,
) -> None:
    """Record a delivery outcome (delivered, bounced, deferred) for some recipients."""
    mark_many(conn, [(queue_id, rcpts, status, when, error, attempts)])


def record_delivery_many(conn: Connection, calls: list[tuple]) -> None:
    """`record_delivery` for many jobs: one statement for the attempts, one for the
    outcomes."""
    record_attempts_many(conn, [(attempts,) for attempts, _ in calls])
    mark_many(conn, [mark for _, marks in calls for mark in marks])


@batched(record_delivery_many)  # new rows, and changes to rows committed before delivery
def record_delivery(
    conn: Connection,
    attempts: list[dict[str, Any]],
    marks: list[tuple[str, list[str], str, datetime | None, str | None, int]],
) -> None:
    """One delivery attempt of a job in one write: its per-recipient attempt rows
    (`record_attempts`) and the outcomes (`mark_recipients` arguments, one tuple for
    each status and error)."""
    record_delivery_many(conn, [(attempts, marks)])
