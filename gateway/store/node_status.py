"""Each node's health and queue as it last reported them, in the shared database.

Every heartbeat (gateway/app/heartbeat.py) replaces its node's row: whether clamd and
Redis answered, the signature database clamd runs, the spool's counts and its oldest
jobs (at most SNAPSHOT_JOBS). The console's node and queue pages read every node's
row, so an operator sees the whole cluster from any node; a row older than a few
heartbeats is a node that is down (or cut off from the database).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime, String, Table, insert, select, update
from sqlalchemy.engine import Connection, Engine

from gateway.store.db import metadata

SNAPSHOT_JOBS = 100

node_status = Table(
    "node_status",
    metadata,
    Column("node", String(128), primary_key=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True)),
    Column("clamd", String(16)),  # ok | failed | None (not configured)
    Column("redis", String(16)),  # ok | failed | None (not configured)
    Column("next_hop", String(16)),  # ok | failed | None (not probed)
    Column("signatures", JSON),  # clamd's version and signature date, or None
    Column("queue", JSON),  # gateway.store.queue_view.summary
    Column("jobs", JSON),  # the oldest jobs, as gateway.store.queue_view.row
)


def report(conn: Connection, node: str, **values: Any) -> None:
    """Replace the node's row (in the caller's transaction: the heartbeat's write)."""
    values = {**values, "jobs": (values.get("jobs") or [])[:SNAPSHOT_JOBS]}
    changed = conn.execute(
        update(node_status).where(node_status.c.node == node).values(**values)
    ).rowcount
    if not changed:
        conn.execute(insert(node_status).values(node=node, **values))


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def all_nodes(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(select(node_status).order_by(node_status.c.node)).mappings().all()
    out = []
    for r in rows:
        item = dict(r)
        item["updated_at"] = _utc(item["updated_at"])
        item["started_at"] = _utc(item["started_at"])
        out.append(item)
    return out
