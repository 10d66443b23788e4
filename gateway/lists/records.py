"""Local block and allow lists in the database: the durable, shared record.

Every change bumps `list_state.version` in the same transaction, so a node (or a
node without Redis) can tell cheaply that it must reload. Entries added by hand
have source ""; an import replaces every entry of its source at once, so
re-importing a published list removes the addresses it no longer lists.
All functions here are blocking: call them through `Database.run`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, overload

from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Connection

from gateway.lists.match import Entry
from gateway.store.db import metadata

list_entries = Table(
    "list_entries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("list", String(8), nullable=False),  # block | allow
    Column("kind", String(16), nullable=False),  # ip | cidr | sender | sender_domain | helo
    Column("value", String(320), nullable=False),
    Column("domain", String(255), nullable=False, default=""),  # "" = every domain
    Column("reason", Text, nullable=False, default=""),
    Column("added_by", String(128), nullable=False),
    Column("added_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True)),
    Column("source", String(128), nullable=False, default=""),  # "" = added by hand
    UniqueConstraint("list", "kind", "value", "domain", "source", name="uq_list_entries"),
)
Index("ix_list_entries_source", list_entries.c.source)

list_imports = Table(
    "list_imports",
    metadata,
    Column("source", String(128), primary_key=True),
    Column("list", String(8), nullable=False),
    Column("domain", String(255), nullable=False, default=""),
    Column("file", String(1024), nullable=False),
    Column("imported_at", DateTime(timezone=True), nullable=False),
    Column("imported_by", String(128), nullable=False),
    Column("entries", Integer, nullable=False),
)

list_state = Table(
    "list_state",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version", Integer, nullable=False),
)


@dataclass(frozen=True)
class ImportRecord:
    source: str
    list: str
    domain: str
    file: str
    imported_at: datetime
    imported_by: str
    entries: int


@overload
def _utc(value: datetime) -> datetime: ...
@overload
def _utc(value: None) -> None: ...
def _utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes: they were written in UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _bump(conn: Connection) -> int:
    updated = conn.execute(
        update(list_state).where(list_state.c.id == 1).values(version=list_state.c.version + 1)
    )
    if updated.rowcount == 0:
        conn.execute(insert(list_state).values(id=1, version=1))
    return int(conn.execute(select(list_state.c.version).where(list_state.c.id == 1)).scalar_one())


def version(engine: Engine) -> int:
    with engine.connect() as conn:
        value = conn.execute(select(list_state.c.version).where(list_state.c.id == 1)).scalar()
    return int(value or 0)


def _entry(row) -> Entry:
    return Entry(
        list=row.list,
        kind=row.kind,
        value=row.value,
        domain=row.domain,
        reason=row.reason,
        added_by=row.added_by,
        added_at=_utc(row.added_at),
        expires_at=_utc(row.expires_at),
        source=row.source,
        id=row.id,
    )


def load_entries(engine: Engine) -> tuple[int, list[Entry]]:
    """(version, every entry) read in one transaction, expired ones included."""
    with engine.begin() as conn:
        current = conn.execute(select(list_state.c.version).where(list_state.c.id == 1)).scalar()
        rows = conn.execute(select(list_entries).order_by(list_entries.c.id)).all()
    return int(current or 0), [_entry(r) for r in rows]


class EntryExists(Exception):
    """`add_entry(..., existing="refuse")` found the same entry; `.entry` is the one kept."""

    def __init__(self, entry: Entry) -> None:
        super().__init__(entry.describe())
        self.entry = entry


def add_entry(
    engine: Engine, entry: Entry, existing: Literal["replace", "refuse", "merge"] = "replace"
) -> tuple[Entry, bool]:
    """Add a hand-made entry; (entry, created). When the same entry exists: "replace" it
    (reason, expiry, who, when), "refuse" (EntryExists), or "merge": only what `entry`
    gives (a reason, an expiry) changes, who added it and when stay."""
    now = entry.added_at or datetime.now(UTC)
    key = and_(
        list_entries.c.list == entry.list,
        list_entries.c.kind == entry.kind,
        list_entries.c.value == entry.value,
        list_entries.c.domain == entry.domain,
        list_entries.c.source == "",
    )
    with engine.begin() as conn:
        found = conn.execute(select(list_entries).where(key)).first()
        values = {
            "reason": entry.reason,
            "added_by": entry.added_by,
            "added_at": now,
            "expires_at": entry.expires_at,
        }
        if found is None:
            conn.execute(
                insert(list_entries).values(
                    list=entry.list,
                    kind=entry.kind,
                    value=entry.value,
                    domain=entry.domain,
                    source="",
                    **values,
                )
            )
        elif existing == "refuse":
            raise EntryExists(_entry(found))
        else:
            if existing == "merge":  # who added it and when stay; a new reason or expiry wins
                values = {k: values[k] for k in ("reason", "expires_at") if values[k]}
            if values:
                conn.execute(
                    update(list_entries).where(list_entries.c.id == found.id).values(**values)
                )
        _bump(conn)
        row = conn.execute(select(list_entries).where(key)).one()
    return _entry(row), found is None


def remove_entry(engine: Engine, list_name: str, kind: str, value: str, domain: str) -> int:
    """Remove a hand-made entry; the number removed (0 or 1)."""
    with engine.begin() as conn:
        removed = conn.execute(
            delete(list_entries).where(
                list_entries.c.list == list_name,
                list_entries.c.kind == kind,
                list_entries.c.value == value,
                list_entries.c.domain == domain,
                list_entries.c.source == "",
            )
        ).rowcount
        if removed:
            _bump(conn)
    return removed


def sources_listing(
    engine: Engine, list_name: str, kind: str, value: str, domain: str
) -> list[str]:
    """The import sources that list this value (a hand removal cannot remove those)."""
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(list_entries.c.source).where(
                    list_entries.c.list == list_name,
                    list_entries.c.kind == kind,
                    list_entries.c.value == value,
                    list_entries.c.domain == domain,
                    list_entries.c.source != "",
                )
            ).scalars()
        )


def replace_import(
    engine: Engine,
    source: str,
    list_name: str,
    domain: str,
    entries: Iterable[tuple[str, str, str]],
    file: str,
    by: str,
) -> int:
    """Replace every entry of `source` by (kind, value, reason) entries, atomically."""
    now = datetime.now(UTC)
    rows: dict[tuple[str, str], str | None] = {}
    for kind, value, reason in entries:
        rows.setdefault((kind, value), reason)
    payload = [
        {
            "list": list_name,
            "kind": kind,
            "value": value,
            "domain": domain,
            "reason": reason,
            "added_by": by,
            "added_at": now,
            "expires_at": None,
            "source": source,
        }
        for (kind, value), reason in rows.items()
    ]
    with engine.begin() as conn:
        conn.execute(delete(list_entries).where(list_entries.c.source == source))
        for start in range(0, len(payload), 5000):
            conn.execute(insert(list_entries), payload[start : start + 5000])
        conn.execute(delete(list_imports).where(list_imports.c.source == source))
        conn.execute(
            insert(list_imports).values(
                source=source,
                list=list_name,
                domain=domain,
                file=file,
                imported_at=now,
                imported_by=by,
                entries=len(payload),
            )
        )
        _bump(conn)
    return len(payload)


def remove_source(engine: Engine, source: str) -> int:
    """Drop an import and all its entries; the number of entries removed."""
    with engine.begin() as conn:
        removed = conn.execute(delete(list_entries).where(list_entries.c.source == source)).rowcount
        gone = conn.execute(delete(list_imports).where(list_imports.c.source == source)).rowcount
        if removed or gone:
            _bump(conn)
    return removed


def imports(engine: Engine) -> list[ImportRecord]:
    with engine.connect() as conn:
        rows = conn.execute(select(list_imports).order_by(list_imports.c.source)).all()
    return [
        ImportRecord(
            r.source, r.list, r.domain, r.file, _utc(r.imported_at), r.imported_by, r.entries
        )
        for r in rows
    ]
