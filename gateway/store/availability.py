"""Heartbeats and signature versions: the records behind availability and freshness.

A node that accepts mail writes a heartbeat to the shared database every 30 s or
so, with whether the next hop (the protected mail server) answered its probe.
A minute of the month in which no node wrote one is a minute nobody accepted
mail: downtime. The next hop's unreachable minutes are recorded beside it; they
are the protected server's outage, not the gateway's.

Each node also records which antivirus signature database it runs (clamd's
VERSION): one row per version per node, with when it was first and last seen,
so the report can say how old the signatures in use were during a month.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    String,
    Table,
    case,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine

from gateway.store.db import metadata

heartbeats = Table(
    "heartbeats",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("node", String(128), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("accepting", Boolean, nullable=False, default=True),
    Column("next_hop_ok", Boolean),  # None: not probed
)
Index("ix_heartbeats_at", heartbeats.c.at)

signature_versions = Table(
    "signature_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("node", String(128), nullable=False),
    Column("version", String(128), nullable=False),  # clamd's VERSION reply
    Column("db_version", Integer),
    Column("db_date", DateTime(timezone=True)),  # None: only local signatures loaded
    Column("first_seen", DateTime(timezone=True), nullable=False),
    Column("last_seen", DateTime(timezone=True), nullable=False),
)
Index("ix_signature_versions_node", signature_versions.c.node, signature_versions.c.last_seen)


def beat(
    conn: Connection,
    node: str,
    at: datetime,
    next_hop_ok: bool | None,
    signatures: dict[str, Any] | None = None,
) -> None:
    """One heartbeat, and the signature version in use now (when clamd answered)."""
    conn.execute(
        insert(heartbeats),
        [{"node": node, "at": at, "accepting": True, "next_hop_ok": next_hop_ok}],
    )
    if signatures is not None:
        seen_signatures(conn, node, at, **signatures)


def seen_signatures(
    conn: Connection,
    node: str,
    at: datetime,
    version: str,
    db_version: int | None,
    db_date: datetime | None,
) -> None:
    """Extend this node's current version row, or start a new one when it changed."""
    s = signature_versions
    latest = conn.execute(
        select(s.c.id, s.c.version).where(s.c.node == node).order_by(s.c.last_seen.desc()).limit(1)
    ).first()
    if latest is not None and latest.version == version[:128]:
        conn.execute(update(s).where(s.c.id == latest.id).values(last_seen=at))
        return
    conn.execute(
        insert(s),
        [
            {
                "node": node,
                "version": version[:128],
                "db_version": db_version,
                "db_date": db_date,
                "first_seen": at,
                "last_seen": at,
            }
        ],
    )


def minutes_between(
    engine: Engine, start: datetime, end: datetime
) -> list[tuple[datetime, bool, bool]]:
    """(minute, some beat found the next hop up, some found it down) of every calendar
    minute (UTC) in [start, end) with an accepting heartbeat, grouped by the database:
    at most 44,640 rows a month, however many nodes beat how often."""
    h = heartbeats
    if engine.dialect.name == "postgresql":
        minute = func.to_char(func.timezone("UTC", h.c.at), "YYYY-MM-DD HH24:MI")
    else:
        minute = func.substr(h.c.at, 1, 16)  # 'YYYY-MM-DD HH:MM' of the stored UTC time
    up = func.max(case((h.c.next_hop_ok.is_(True), 1), else_=0))
    down = func.max(case((h.c.next_hop_ok.is_(False), 1), else_=0))
    query = (
        select(minute, up, down)
        .where(h.c.at >= start, h.c.at < end, h.c.accepting.is_(True))
        .group_by(minute)
    )
    with engine.connect() as conn:
        return [
            (
                datetime(
                    int(m[0:4]),
                    int(m[5:7]),
                    int(m[8:10]),
                    int(m[11:13]),
                    int(m[14:16]),
                    tzinfo=UTC,
                ),
                bool(ok),
                bool(bad),
            )
            for m, ok, bad in conn.execute(query)
        ]


def first_beat(engine: Engine) -> datetime | None:
    """When the gateway first ran (the earliest heartbeat on record)."""
    h = heartbeats
    with engine.connect() as conn:
        return conn.execute(select(h.c.at).order_by(h.c.at).limit(1)).scalar()


def versions_in_use(engine: Engine, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """Signature versions seen by any node during [start, end)."""
    s = signature_versions
    with engine.connect() as conn:
        return [
            dict(r._mapping)
            for r in conn.execute(
                select(s)
                .where(s.c.last_seen >= start, s.c.first_seen < end)
                .order_by(s.c.first_seen)
            )
        ]


def purge(engine: Engine, now: datetime, keep_days: int = 400) -> int:
    """Heartbeats older than a year and a month go: the report of an old month has
    been handed over by then."""
    with engine.begin() as conn:
        cutoff = now - timedelta(days=keep_days)
        return conn.execute(delete(heartbeats).where(heartbeats.c.at < cutoff)).rowcount
