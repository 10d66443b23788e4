"""The report's queries: a month of recipient outcomes, streamed, and their feedback.

Delays and days are computed by the database (no date parsing per row in Python),
which is what keeps a month of a million mails inside the time budget; the few
dialect differences live here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Float, Numeric, case, cast, extract, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.sql.elements import ColumnElement

from gateway.store import ledger

STREAM_ROWS = 20_000  # rows fetched per round trip


class Fact(NamedTuple):
    """Recipients with the same outcome (`n` of them), as the report needs it."""

    domain: str
    day: str  # YYYY-MM-DD (UTC) the mail was received
    outcome: str  # accepted | rejected
    action: str
    spam: bool
    virus_found: bool
    cleaned: bool
    av_enabled: bool | None
    av_mode: str | None
    status: str
    deferred: bool  # more than one delivery attempt
    n: int


class Labelled(NamedTuple):
    """One recipient of a mail that has feedback (its outcome and who it was)."""

    message_id: str
    rcpt: str
    fact: Fact


def _day(engine: Engine, column: Any) -> ColumnElement:
    if engine.dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD")
    return func.substr(column, 1, 10)  # SQLite stores 'YYYY-MM-DD HH:MM:SS.ffffff' (UTC)


def _seconds_between(engine: Engine, later: Any, earlier: Any) -> ColumnElement:
    if engine.dialect.name == "postgresql":
        return cast(extract("epoch", later - earlier), Float)
    # julianday() is a double of about 2.46 million days: 40 microseconds of noise,
    # so round to the millisecond
    return func.round((func.julianday(later) - func.julianday(earlier)) * 86400.0, 3)


def _month(query: Any, start: datetime, end: datetime, domain: str | None) -> Any:
    m, r = ledger.messages, ledger.recipients
    query = query.where(
        m.c.received_at >= start,
        m.c.received_at < end,
        m.c.outcome.in_(("accepted", "rejected")),  # tempfailed mail is not received
    )
    return query if domain is None else query.where(r.c.domain == domain)


def _outcome_columns(engine: Engine) -> list[Any]:
    m, r = ledger.messages, ledger.recipients
    return [
        r.c.domain,
        _day(engine, m.c.received_at),
        m.c.outcome,
        r.c.action,
        r.c.spam,
        r.c.virus_found,
        r.c.cleaned,
        r.c.av_enabled,
        r.c.av_mode,
        r.c.status,
        case((r.c.attempts > 1, True), else_=False),
    ]


def facts(engine: Engine, start: datetime, end: datetime, domain: str | None = None) -> list[Fact]:
    """The month's recipients, grouped by outcome by the database (a few thousand
    groups for a million mails)."""
    m, r = ledger.messages, ledger.recipients
    columns = _outcome_columns(engine)
    query = _month(
        select(*columns, func.count()).select_from(r.join(m, r.c.message_id == m.c.id)),
        start,
        end,
        domain,
    ).group_by(*columns)
    with engine.connect() as conn:
        return [Fact(*row[:-1], int(row[-1])) for row in conn.execute(query)]


def labelled(
    engine: Engine,
    start: datetime,
    end: datetime,
    domain: str | None,
    message_ids: set[str],
) -> list[Labelled]:
    """The recipients of the mails that have feedback, one by one."""
    m, r = ledger.messages, ledger.recipients
    out: list[Labelled] = []
    ids = sorted(message_ids)
    with engine.connect() as conn:
        for index in range(0, len(ids), 500):
            query = _month(
                select(r.c.message_id, r.c.rcpt, *_outcome_columns(engine)).select_from(
                    r.join(m, r.c.message_id == m.c.id)
                ),
                start,
                end,
                domain,
            ).where(r.c.message_id.in_(ids[index : index + 500]))
            for row in conn.execute(query):
                out.append(Labelled(row[0], row[1], Fact(*row[2:], 1)))
    return out


class DelayGroup(NamedTuple):
    """Delivered copies of one domain whose delay rounds to `value` (10 ms steps)."""

    domain: str
    value: float
    over_1h: bool
    n: int
    total: float  # exact sums, for the mean and its interval
    squares: float
    maximum: float


def delays(
    engine: Engine, start: datetime, end: datetime, domain: str | None = None
) -> list[DelayGroup]:
    """Seconds from end of DATA to the next hop's 250 of every delivered copy, grouped
    by the database to 10 ms (a few thousand groups for a million mails: the quantiles
    are exact to 10 ms, the mean, maximum and count over an hour exact);
    deferred-then-delivered copies included, released ones not (that delay is staff's)."""
    m, r = ledger.messages, ledger.recipients
    seconds = _seconds_between(engine, r.c.delivered_at, m.c.received_at)
    if engine.dialect.name == "postgresql":
        rounded = cast(func.round(cast(seconds, Numeric), 2), Float)
    else:
        rounded = func.round(seconds, 2)
    over = case((seconds > 3600.0, True), else_=False)
    query = _month(
        select(
            r.c.domain,
            rounded,
            over,
            func.count(),
            func.sum(seconds),
            func.sum(seconds * seconds),
            func.max(seconds),
        )
        .select_from(r.join(m, r.c.message_id == m.c.id))
        .where(r.c.status == "delivered", r.c.delivered_at.is_not(None)),
        start,
        end,
        domain,
    ).group_by(r.c.domain, rounded, over)
    with engine.connect() as conn:
        return [
            DelayGroup(
                row[0],
                float(row[1]),
                bool(row[2]),
                int(row[3]),
                float(row[4]),
                float(row[5]),
                float(row[6]),
            )
            for row in conn.execute(query)
        ]


def detect_only_mailboxes(
    engine: Engine, start: datetime, end: datetime, domain: str | None = None
) -> dict[str, int]:
    """domain -> mailboxes in detect mode that got a virus delivered flagged, not cleaned."""
    m, r = ledger.messages, ledger.recipients
    query = (
        _month(
            select(r.c.domain, func.count(func.distinct(func.lower(r.c.rcpt)))).select_from(
                r.join(m, r.c.message_id == m.c.id)
            ),
            start,
            end,
            domain,
        )
        .where(
            r.c.virus_found.is_(True),
            r.c.cleaned.is_(False),
            r.c.av_mode == "detect",
            r.c.status.in_(("delivered", "pending", "bounced", "released")),
        )
        .group_by(r.c.domain)
    )
    with engine.connect() as conn:
        return {row[0]: int(row[1]) for row in conn.execute(query)}


def feedback_rows(
    engine: Engine, start: datetime, end: datetime, domain: str | None = None
) -> list[Any]:
    """Feedback about mail received in [start, end), whenever it came, oldest first."""
    m, f = ledger.messages, ledger.feedback
    query = (
        select(f.c.id, f.c.message_id, f.c.rcpt, f.c.kind, f.c.source, f.c.created_at)
        .select_from(f.join(m, f.c.message_id == m.c.id))
        .where(m.c.received_at >= start, m.c.received_at < end)
        .order_by(f.c.created_at, f.c.id)
    )
    if domain is not None:
        r = ledger.recipients
        has_domain = (
            select(r.c.id).where(r.c.message_id == f.c.message_id, r.c.domain == domain).exists()
        )
        query = query.where(has_domain)
    with engine.connect() as conn:
        return list(conn.execute(query))


def bounced(
    engine: Engine, start: datetime, end: datetime, domain: str | None, limit: int = 100
) -> list[dict[str, Any]]:
    """Bounced recipients of the month (listed apart from the delays), newest first."""
    m, r = ledger.messages, ledger.recipients
    query = (
        select(r.c.message_id, r.c.rcpt, r.c.domain, r.c.last_error, m.c.received_at)
        .select_from(r.join(m, r.c.message_id == m.c.id))
        .where(m.c.received_at >= start, m.c.received_at < end, r.c.status == "bounced")
        .order_by(m.c.received_at.desc())
        .limit(limit)
    )
    if domain is not None:
        query = query.where(r.c.domain == domain)
    with engine.connect() as conn:
        return [
            {
                "queue_id": row.message_id,
                "rcpt": row.rcpt,
                "domain": row.domain,
                "received_at": row.received_at.isoformat(),
                "error": row.last_error,
            }
            for row in conn.execute(query)
        ]
