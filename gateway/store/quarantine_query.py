"""The quarantine list as staff page through it: filters and keyset paging.

Newest first, in pages that continue after the last item seen (created_at, id) rather
than at an offset, so the hundredth page of 100,000 held items costs what the first
does (the indexes ix_quarantine_page*). Text filters are case-insensitive substrings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import String, and_, cast, or_, select
from sqlalchemy.engine import Engine

from gateway.store.quarantine import HELD, quarantine

MAX_PAGE = 500


@dataclass(frozen=True)
class Filters:
    domain: str | None = None
    status: str | None = HELD  # None: any
    kind: str | None = None
    reason: str | None = None
    sender: str | None = None
    recipient: str | None = None
    subject: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    min_score: float | None = None
    max_score: float | None = None

    def as_query(self) -> dict[str, str]:
        """The filters set, as query-string values (for links to the next page)."""
        out = {}
        for name, value in vars(self).items():
            if value is None or (name == "status" and value == HELD):
                continue
            out[name] = value.isoformat() if isinstance(value, datetime) else str(value)
        if self.status is None:
            out["status"] = "any"
        return out


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    next: str | None  # the cursor of the next page, None on the last


def cursor_of(item: dict[str, Any]) -> str:
    created = item["created_at"]
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    return f"{created.astimezone(UTC).isoformat()}~{item['id']}"


def parse_cursor(text: str) -> tuple[datetime, str]:
    when, sep, item_id = text.partition("~")
    try:
        moment = datetime.fromisoformat(when)
    except ValueError:
        raise ValueError(f"{text!r} is not a page cursor") from None
    if not sep or not item_id:
        raise ValueError(f"{text!r} is not a page cursor")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment, item_id


def page(
    engine: Engine,
    filters: Filters,
    domains: Sequence[str] | None,
    after: str | None = None,
    limit: int = 50,
) -> Page:
    """One page; `domains` None: every domain, else only those (the actor's)."""
    q = quarantine.c
    limit = max(1, min(limit, MAX_PAGE))
    cols = [c for c in quarantine.c if c.name != "data"]
    query = select(*cols).order_by(q.created_at.desc(), q.id.desc()).limit(limit + 1)
    if filters.status is not None:
        query = query.where(q.status == filters.status)
    if domains is not None:
        query = query.where(q.domain.in_([d.lower() for d in domains]))
    if filters.domain:
        query = query.where(q.domain == filters.domain.strip().lower())
    if filters.kind:
        query = query.where(q.kind == filters.kind)
    for column, text in (
        (q.reason, filters.reason),
        (q.mail_from, filters.sender),
        (q.subject, filters.subject),
        (cast(q.rcpts, String), filters.recipient),
    ):
        if text:
            query = query.where(column.icontains(text, autoescape=True))
    if filters.since is not None:
        query = query.where(q.created_at >= _stored(engine, filters.since))
    if filters.until is not None:
        query = query.where(q.created_at < _stored(engine, filters.until))
    if filters.min_score is not None:
        query = query.where(q.score >= filters.min_score)
    if filters.max_score is not None:
        query = query.where(q.score <= filters.max_score)
    if after:
        moment, item_id = parse_cursor(after)
        moment = _stored(engine, moment)
        query = query.where(
            or_(q.created_at < moment, and_(q.created_at == moment, q.id < item_id))
        )
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(query)]
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows, cursor_of(rows[-1]) if more and rows else None)


def _stored(engine: Engine, moment: datetime) -> datetime:
    """A time as the database compares it: SQLite keeps UTC without a zone."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if engine.dialect.name == "sqlite":
        return moment.astimezone(UTC).replace(tzinfo=None)
    return moment
