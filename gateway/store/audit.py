"""The audit log: who did what to which object, before and after, when, from where.

Every action a person takes (a release, a list entry, a policy, a user, a rule) is
written here by the code that carries it out, in the same transaction when it can,
so an action and its record never part. Rows are never changed or removed by the
gateway. Operators read all of it; a domain admin reads the rows of their domains.

    audit.record(conn_or_engine, actor="alice", action="quarantine.release",
                 object_type="quarantine", object_id=item_id, domain="example.com",
                 before={"status": "held"}, after={"status": "release_requested"},
                 address="192.0.2.7")
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Index, Integer, String, Table, select
from sqlalchemy.engine import Connection, Engine

from gateway.store.db import metadata

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(255), nullable=False),
    Column("action", String(64), nullable=False),  # "quarantine.release", "users.add"...
    Column("object_type", String(32), nullable=False),
    Column("object_id", String(512), nullable=False),
    Column("domain", String(255)),  # None: not about one domain (users, global lists)
    Column("before", JSON),
    Column("after", JSON),
    Column("address", String(64)),  # the client address (web), or "cli"
)
Index("ix_audit_log_at", audit_log.c.at)
Index("ix_audit_log_domain_id", audit_log.c.domain, audit_log.c.id)


def record(
    target: Connection | Engine,
    *,
    actor: str,
    action: str,
    object_type: str,
    object_id: str,
    domain: str | None = None,
    before: Any = None,
    after: Any = None,
    address: str | None = None,
    when: datetime | None = None,
) -> None:
    """Write one audit row: in the caller's transaction (a Connection) or its own (an
    Engine). `before`/`after` are JSON-able values (dates become ISO strings)."""
    row = {
        "at": when or datetime.now(UTC),
        "actor": actor[:255],
        "action": action[:64],
        "object_type": object_type[:32],
        "object_id": str(object_id)[:512],
        "domain": None if domain is None else domain.lower()[:255],
        "before": _jsonable(before),
        "after": _jsonable(after),
        "address": None if address is None else address[:64],
    }
    if isinstance(target, Engine):
        with target.begin() as conn:
            conn.execute(audit_log.insert().values(**row))
    else:
        target.execute(audit_log.insert().values(**row))


def entries(
    engine: Engine,
    domains: Sequence[str] | None = None,
    *,
    before_id: int | None = None,
    limit: int = 100,
    object_id: str | None = None,
) -> list[dict[str, Any]]:
    """Newest first; `domains` None: every row, else only rows of those domains;
    `before_id` pages on (keyset)."""
    query = select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
    if domains is not None:
        query = query.where(audit_log.c.domain.in_([d.lower() for d in domains]))
    if before_id is not None:
        query = query.where(audit_log.c.id < before_id)
    if object_id is not None:
        query = query.where(audit_log.c.object_id == object_id)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    return str(value)
