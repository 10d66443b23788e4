"""The report's queries: a month of recipient outcomes in one pass, and their feedback.

Delays and days are computed by the database (no date parsing per row in Python)
and the month is read once for outcomes, delays and detect-only mailboxes, which
is what keeps a month of a million mails inside the time budget; the few dialect
differences live here.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sqlalchemy import Float, Integer, and_, case, cast, extract, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.sql.elements import ColumnElement

from gateway.store import ledger

HOUR = 3600.0


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


def _utc(when: datetime) -> datetime:
    """SQLite gives naive datetimes back (it stores UTC without an offset)."""
    return when if when.tzinfo else when.replace(tzinfo=UTC)


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
                out.append(Labelled(row[0], row[1], Fact._make((*row[2:], 1))))
    return out


class DelayGroup(NamedTuple):
    """Delivered copies of one domain whose delay rounds to `value` (10 ms steps)."""

    domain: str
    value: float
    over_1h: bool
    n: int
    total: float  # sums of the 10 ms values, for the mean and its interval
    squares: float
    maximum: float


class MonthScan(NamedTuple):
    """Everything the report needs of the month's recipients, from one pass."""

    facts: list[Fact]
    delays: list[DelayGroup]
    detect_only: dict[str, int]  # domain -> detect-mode mailboxes that got a virus flagged


# bits of the `flags` column: booleans packed into one integer keep the pass cheap
_REJECTED, _SPAM, _VIRUS, _CLEANED, _DEFERRED, _AV_ON, _AV_KNOWN = (1 << k for k in range(7))
_KEPT_DETECT_ONLY = ("delivered", "pending", "bounced", "released")


def _bit(flag: Any, value: int) -> ColumnElement:
    return case((flag, value), else_=0)


def _scan_columns(engine: Engine) -> list[Any]:
    m, r = ledger.messages, ledger.recipients
    seconds = _seconds_between(engine, r.c.delivered_at, m.c.received_at)
    flags = (
        _bit(m.c.outcome == "rejected", _REJECTED)
        + _bit(r.c.spam.is_(True), _SPAM)
        + _bit(r.c.virus_found.is_(True), _VIRUS)
        + _bit(r.c.cleaned.is_(True), _CLEANED)
        + _bit(r.c.attempts > 1, _DEFERRED)
        + _bit(r.c.av_enabled.is_(True), _AV_ON)
        + _bit(r.c.av_enabled.is_not(None), _AV_KNOWN)
    )
    delivered = and_(r.c.status == "delivered", r.c.delivered_at.is_not(None))
    centis = case((delivered, cast(func.round(seconds * 100.0), Integer)))
    detect_only = and_(
        r.c.virus_found.is_(True),
        r.c.cleaned.is_(False),
        r.c.av_mode == "detect",
        r.c.status.in_(_KEPT_DETECT_ONLY),
    )
    mailbox = case((detect_only, func.lower(r.c.rcpt)))
    return [
        r.c.domain,
        _day(engine, m.c.received_at),
        flags,
        r.c.action,
        r.c.status,
        r.c.av_mode,
        centis,
        mailbox,
    ]


def scan_month(
    engine: Engine, start: datetime, end: datetime, domain: str | None = None
) -> MonthScan:
    """The month's recipients in one pass: outcome groups (by domain, day and verdict),
    delivery delays of delivered copies to 10 ms (deferred-then-delivered included,
    released ones not: that delay is staff's), and detect-only mailboxes.

    PostgreSQL groups with a hash aggregate; SQLite only sorts to group, which costs
    more than streaming the compact rows into a Counter (hashing in C), so there the
    grouping is done here. Either way: a few thousand groups for a million mails."""
    m, r = ledger.messages, ledger.recipients
    columns = _scan_columns(engine)
    joined = r.join(m, r.c.message_id == m.c.id)
    groups: Counter[tuple[Any, ...]] = Counter()
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            query = _month(select(*columns).select_from(joined), start, end, domain)
            # the driver's own rows: none of these columns needs SQLAlchemy's conversion
            groups.update(conn.execute(query).cursor)  # type: ignore[call-overload]
        else:
            query = _month(
                select(*columns, func.count()).select_from(joined), start, end, domain
            ).group_by(*columns)
            for row in conn.execute(query):
                groups[tuple(row[:-1])] += int(row[-1])
    return _fold(groups)


def _fold(groups: Counter[tuple[Any, ...]]) -> MonthScan:
    outcomes: Counter[tuple[Any, ...]] = Counter()
    delays: Counter[tuple[str, int]] = Counter()
    mailboxes: dict[str, set[str]] = {}
    for (domain, day, flags, action, status, av_mode, centis, mailbox), n in groups.items():
        outcomes[(domain, day, flags, action, status, av_mode)] += n
        if centis is not None:
            delays[(domain, int(centis))] += n
        if mailbox is not None:
            mailboxes.setdefault(domain, set()).add(mailbox)
    facts = [
        Fact(
            domain=domain,
            day=day,
            outcome="rejected" if flags & _REJECTED else "accepted",
            action=action,
            spam=bool(flags & _SPAM),
            virus_found=bool(flags & _VIRUS),
            cleaned=bool(flags & _CLEANED),
            av_enabled=bool(flags & _AV_ON) if flags & _AV_KNOWN else None,
            av_mode=av_mode,
            status=status,
            deferred=bool(flags & _DEFERRED),
            n=n,
        )
        for (domain, day, flags, action, status, av_mode), n in outcomes.items()
    ]
    delay_groups = []
    for (domain, centis), n in delays.items():
        value = centis / 100.0
        delay_groups.append(
            DelayGroup(domain, value, value > HOUR, n, value * n, value * value * n, value)
        )
    return MonthScan(facts, delay_groups, {d: len(s) for d, s in mailboxes.items()})


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
                "received_at": _utc(row.received_at).isoformat(),
                "error": row.last_error,
            }
            for row in conn.execute(query)
        ]
