"""The quarantine: held copies in the shared database, one item per message and domain.

Items live in the database (not on one node's disk) so any node and the web
console can reach them, and each item belongs to one recipient domain so a
domain admin sees only their own. The original bytes as received are kept
(compressed); they are never rendered as live HTML anywhere.

Release is a request in the database; a running gateway node claims it,
spools the copy and delivers it, so releases work from any node.
"""

from __future__ import annotations

import zlib
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    delete,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine

from gateway.store.db import metadata

HELD, RELEASE_REQUESTED, RELEASED, DELETED = "held", "release_requested", "released", "deleted"
# why an item is held
SPAM, VIRUS, POLICY, REJECTED, VIRUS_ORIGINAL = (
    "spam",
    "virus",
    "policy",
    "rejected",
    "virus_original",
)

quarantine = Table(
    "quarantine",
    metadata,
    Column("id", String(48), primary_key=True),
    Column("message_id", String(40), ForeignKey("messages.id"), nullable=False),
    Column("domain", String(255), nullable=False),
    Column("rcpts", JSON, nullable=False),
    Column("kind", String(24), nullable=False),
    Column("reason", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("size", Integer, nullable=False),
    Column("data", LargeBinary, nullable=False),  # zlib-compressed original
    Column("status", String(24), nullable=False, default=HELD),
    Column("decided_by", String(255)),
    Column("decided_at", DateTime(timezone=True)),
    # copied from the ledger so the console filters and pages without a join
    Column("mail_from", String(512)),
    Column("subject", Text),
    Column("score", Float),  # the highest score among the item's recipients
)
Index("ix_quarantine_domain_status", quarantine.c.domain, quarantine.c.status)
# keyset paging, newest first: per domain (staff, admins) and over all (operators)
Index(
    "ix_quarantine_page_domain",
    quarantine.c.status,
    quarantine.c.domain,
    quarantine.c.created_at,
    quarantine.c.id,
)
Index("ix_quarantine_page", quarantine.c.status, quarantine.c.created_at, quarantine.c.id)
Index("ix_quarantine_message", quarantine.c.message_id)


def item_row(
    item_id: str,
    message_id: str,
    domain: str,
    rcpts: list[str],
    kind: str,
    reason: str,
    raw: bytes,
    created_at: datetime,
    *,
    mail_from: str | None = None,
    subject: str | None = None,
    score: float | None = None,
    data: bytes | None = None,
) -> dict[str, Any]:
    """A quarantine row; `data` the copy as `pack` made it, else packed here."""
    return {
        "mail_from": None if mail_from is None else mail_from[:512],
        "subject": None if subject is None else subject[:2000],
        "score": score,
        "id": item_id,
        "message_id": message_id,
        "domain": domain,
        "rcpts": rcpts,
        "kind": kind,
        "reason": reason[:2000],
        "created_at": created_at,
        "size": len(raw),
        "data": pack(raw) if data is None else data,
        "status": HELD,
    }


def pack(raw: bytes) -> bytes:
    """A held copy as stored (zlib level 6: about 0.4 ms for 10 KB, the GIL let go)."""
    return zlib.compress(raw, 6)


def original(engine: Engine, item_id: str) -> bytes | None:
    with engine.connect() as conn:
        row = conn.execute(select(quarantine.c.data).where(quarantine.c.id == item_id)).first()
    return None if row is None else zlib.decompress(row.data)


def get(engine: Engine, item_id: str) -> dict[str, Any] | None:
    cols = [c for c in quarantine.c if c.name != "data"]
    with engine.connect() as conn:
        row = conn.execute(select(*cols).where(quarantine.c.id == item_id)).first()
    return None if row is None else dict(row._mapping)


def list_items(
    engine: Engine, domain: str | None = None, status: str | None = HELD, limit: int = 100
) -> list[dict[str, Any]]:
    cols = [c for c in quarantine.c if c.name != "data"]
    query = select(*cols).order_by(quarantine.c.created_at.desc()).limit(limit)
    if domain is not None:
        query = query.where(quarantine.c.domain == domain.lower())
    if status is not None:
        query = query.where(quarantine.c.status == status)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def request_release(engine: Engine, item_id: str, actor: str) -> bool:
    """Ask the gateway to deliver a held item; False if it is not held."""
    return _transition(engine, item_id, (HELD,), RELEASE_REQUESTED, actor)


def discard(engine: Engine, item_id: str, actor: str) -> bool:
    return _transition(engine, item_id, (HELD, RELEASE_REQUESTED), DELETED, actor)


def claim_release(engine: Engine, item_id: str) -> bool:
    """Mark a requested release as done; exactly one node wins."""
    return _transition(engine, item_id, (RELEASE_REQUESTED,), RELEASED, None)


def release_requests(engine: Engine, limit: int = 50) -> list[dict[str, Any]]:
    return list_items(engine, status=RELEASE_REQUESTED, limit=limit)


def _transition(
    engine: Engine, item_id: str, from_states: tuple[str, ...], to_state: str, actor: str | None
) -> bool:
    with engine.begin() as conn:
        return transition(conn, item_id, from_states, to_state, actor)


def transition(
    conn: Connection, item_id: str, from_states: tuple[str, ...], to_state: str, actor: str | None
) -> bool:
    """Move an item between states inside the caller's transaction; False if it was not
    in one of `from_states` (someone else decided first)."""
    values: dict[str, Any] = {"status": to_state}
    if actor is not None:
        values.update(decided_by=actor, decided_at=datetime.now(UTC))
    result = conn.execute(
        update(quarantine)
        .where(quarantine.c.id == item_id, quarantine.c.status.in_(from_states))
        .values(**values)
    )
    return result.rowcount == 1


def purge(engine: Engine, now: datetime, retention_days: float) -> int:
    """Remove items (held or decided) older than the retention; returns how many.

    The ledger keeps each message's verdict and delivery rows, so the service
    report loses nothing; only the held copies go.
    """
    cutoff = now - timedelta(days=retention_days)
    with engine.begin() as conn:
        return conn.execute(delete(quarantine).where(quarantine.c.created_at < cutoff)).rowcount
