"""Attachments of delivered mail, kept content-addressed for retro-detection.

A virus that today's signatures miss shows up in next week's. To count it (it
belongs in the denominator of the detection rate), the attachments we
delivered are kept for `[clamav] attachment_retention_days`, deduplicated by
sha256, and `mailwarden rescan` scans them again with the current signatures;
each new hit becomes a MISSED_VIRUS feedback row in the ledger.

They live in the shared database, not on a node's disk: with several nodes
behind one MX, a rescan on any node must see what every node delivered, and
the database is already the one shared, backed-up store (the quarantine keeps
whole messages there too). Identical attachments (the same PDF sent to 500
people) are stored once; blobs are zlib-compressed when that saves space.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    bindparam,
    delete,
    exists,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine

from gateway.mail.mime import uuencoded_blocks
from gateway.store import bulk, feedback, ledger
from gateway.store.db import metadata

attachment_blobs = Table(
    "attachment_blobs",
    metadata,
    Column("sha256", String(64), primary_key=True),
    Column("size", Integer, nullable=False),
    Column("compressed", Boolean, nullable=False),
    Column("data", LargeBinary, nullable=False),
    Column("first_seen", DateTime(timezone=True), nullable=False),
    Column("last_seen", DateTime(timezone=True), nullable=False),
)

attachment_refs = Table(
    "attachment_refs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("message_id", String(40), nullable=False),  # ledger messages.id
    Column("part_id", String(64), nullable=False),
    Column("filename", String(255)),
    Column("sha256", String(64), ForeignKey("attachment_blobs.sha256"), nullable=False),
    Column("stored_at", DateTime(timezone=True), nullable=False),
    Column("missed_virus", String(255)),  # set once a rescan recorded it
    Column("reported_at", DateTime(timezone=True)),
)
Index("ix_attachment_refs_stored", attachment_refs.c.stored_at)
Index("ix_attachment_refs_sha256", attachment_refs.c.sha256)


@dataclass(frozen=True)
class Attachment:
    part_id: str
    filename: str | None
    data: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def attachments_of(parts: Sequence[Any], skip: Iterable[str] = ()) -> list[Attachment]:
    """The attachments among leaf parts (gateway.mail.mime.Part), minus the `skip` part ids.

    An attachment is a leaf that is not a plain text/HTML body (it has a file
    name or a non-text type), or a uuencoded file inside a text body.
    """
    skipped = set(skip)
    out: list[Attachment] = []
    for part in parts:
        if part.part_id in skipped or "too_deep" in part.flags:
            continue
        if not part.is_text and part.payload:
            out.append(Attachment(part.part_id, part.filename, part.payload))
        elif part.content_type.startswith("text/") and b"begin " in part.payload:
            out.extend(
                Attachment(part.part_id, name, data)
                for name, data in uuencoded_blocks(part.payload)
            )
    return out


def kept_after_delivery(parts: Sequence[Any], infections: Iterable[Any]) -> list[Attachment]:
    """What to keep of a delivered message: its attachments minus the infected parts.

    Infected parts are known already (no rescan needed); a virus not separable
    from the message (part id "") means nothing of it is kept.
    """
    infected = {i.part_id for i in infections}
    if "" in infected:
        return []
    return attachments_of(parts, infected)


@dataclass(frozen=True)
class Packed:
    """An attachment ready for the store: hashed and (when it pays) compressed."""

    part_id: str
    filename: str | None
    sha256: str
    size: int
    compressed: bool
    data: bytes


def pack(attachments: Sequence[Attachment]) -> list[Packed]:
    """Hash and compress (CPU work: run it in a thread, not in the database writer)."""
    out = []
    for item in attachments:
        packed = zlib.compress(item.data, 1)
        compressed = len(packed) < len(item.data) * 0.9
        out.append(
            Packed(
                item.part_id,
                item.filename,
                item.sha256,
                len(item.data),
                compressed,
                packed if compressed else item.data,
            )
        )
    return out


def store_attachments(
    conn: Connection,
    message_id: str,
    attachments: Sequence[Attachment | Packed],
    now: datetime,
) -> None:
    """Record a delivered message's attachments (inside the caller's transaction)."""
    store_many(conn, [(message_id, attachments)], now)


def store_many(
    conn: Connection,
    calls: Sequence[tuple[str, Sequence[Attachment | Packed]]],
    now: datetime,
) -> None:
    """`store_attachments` for several messages: a blob already stored (by any node, or
    earlier in `calls`) is stored once and its last_seen moved to `now`; one reference
    per attachment. Three statements for the lot, however many messages."""
    blobs: dict[str, Packed] = {}
    refs = []
    for message_id, items in calls:
        for item in items:
            blob_row = item if isinstance(item, Packed) else pack([item])[0]
            blobs.setdefault(blob_row.sha256, blob_row)
            refs.append(
                {
                    "message_id": message_id,
                    "part_id": item.part_id[:64],
                    "filename": (item.filename or "")[:255] or None,
                    "sha256": blob_row.sha256,
                    "stored_at": now,
                }
            )
    if not refs:
        return
    values = [
        {
            "sha256": b.sha256,
            "size": b.size,
            "compressed": b.compressed,
            "data": b.data,
            "first_seen": now,
            "last_seen": now,
        }
        for b in blobs.values()
    ]
    # another node may store the same blob at the same moment: first one wins
    conn.execute(_insert_or_ignore(conn.dialect.name), values)
    # the ones stored before: seen again now (not the new ones: a blob is not rewritten)
    conn.execute(_TOUCH_BLOBS, {"b_now": now, "b_shas": list(blobs)})
    bulk.executemany(conn, _INSERT_REFS, refs)


# built once (their cache keys are kept): these run for every delivered attachment
_SEEN = attachment_blobs.c.last_seen.type
_TOUCH_BLOBS = (
    update(attachment_blobs)
    .where(
        attachment_blobs.c.sha256.in_(bindparam("b_shas", expanding=True)),
        attachment_blobs.c.last_seen != bindparam("b_now", type_=_SEEN),
    )
    .values(last_seen=bindparam("b_now", type_=_SEEN))
)
_INSERT_REFS = insert(attachment_refs)
_INSERT_OR_IGNORE: dict[str, Any] = {}


def _insert_or_ignore(dialect: str) -> Any:
    stmt = _INSERT_OR_IGNORE.get(dialect)
    if stmt is None:
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        elif dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as dialect_insert  # type: ignore[assignment]
        else:  # pragma: no cover - the two databases the project supports
            raise RuntimeError(f"unsupported database {dialect}")
        stmt = _INSERT_OR_IGNORE[dialect] = dialect_insert(
            attachment_blobs
        ).on_conflict_do_nothing()
    return stmt


def purge(engine: Engine, now: datetime, retention_days: int) -> tuple[int, int]:
    """Forget references older than the retention, then blobs nothing refers to."""
    cutoff = now - timedelta(days=retention_days)
    with engine.begin() as conn:
        refs = conn.execute(delete(attachment_refs).where(attachment_refs.c.stored_at < cutoff))
        orphan = ~exists().where(attachment_refs.c.sha256 == attachment_blobs.c.sha256)
        blobs = conn.execute(delete(attachment_blobs).where(orphan))
    return refs.rowcount, blobs.rowcount


def blobs_to_rescan(engine: Engine, since: datetime) -> list[str]:
    """sha256 of blobs delivered since `since` that no rescan has reported yet."""
    query = (
        select(attachment_refs.c.sha256)
        .where(attachment_refs.c.stored_at >= since, attachment_refs.c.reported_at.is_(None))
        .distinct()
        .order_by(attachment_refs.c.sha256)
    )
    with engine.connect() as conn:
        return [r.sha256 for r in conn.execute(query)]


def blob(engine: Engine, sha256: str) -> bytes | None:
    with engine.connect() as conn:
        row = conn.execute(
            select(attachment_blobs.c.data, attachment_blobs.c.compressed).where(
                attachment_blobs.c.sha256 == sha256
            )
        ).first()
    if row is None:
        return None
    return zlib.decompress(row.data) if row.compressed else bytes(row.data)


def record_missed_virus(
    engine: Engine,
    sha256: str,
    virus: str,
    since: datetime,
    now: datetime,
    db_version: str | None,
) -> list[dict[str, Any]]:
    """A virus label (feedback) for every recipient of each mail that delivered this blob,
    once; returns the rows written (one per recipient)."""
    with engine.begin() as conn:
        refs = conn.execute(
            select(attachment_refs).where(
                attachment_refs.c.sha256 == sha256,
                attachment_refs.c.stored_at >= since,
                attachment_refs.c.reported_at.is_(None),
            )
        ).all()
        by_message: dict[str, list[Any]] = {}
        for ref in refs:
            by_message.setdefault(ref.message_id, []).append(ref)
        known = set(
            conn.scalars(
                select(ledger.messages.c.id).where(ledger.messages.c.id.in_(list(by_message)))
            )
        )
        rows = []
        for message_id, message_refs in by_message.items():
            if message_id not in known:  # a purged ledger row has nothing to attach feedback to
                continue
            result = feedback.add_feedback(
                conn,
                message_id,
                feedback.VIRUS,
                source="rescan",
                when=now,
                event=f"rescan:{sha256}",
                details={
                    "virus": virus,
                    "sha256": sha256,
                    "parts": [{"part_id": r.part_id, "filename": r.filename} for r in message_refs],
                    "db_version": db_version,
                },
            )
            rows.extend(result.recorded)
        if refs:
            conn.execute(
                update(attachment_refs)
                .where(attachment_refs.c.id.in_([r.id for r in refs]))
                .values(missed_virus=virus[:255], reported_at=now)
            )
    return rows
