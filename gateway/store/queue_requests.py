"""Queue actions addressed to another node, in the shared database.

Each node's spool is its own, so an operator on node A cannot touch a job of node
B directly: the console writes a row here naming node B and publishes B's name on
`channel` (Redis); node B picks up the rows addressed to it at once, or within
[delivery] request_refresh seconds without Redis (gateway/app/queue_requests.py), hands each to
its own spool's control requests (gateway/store/queue_control.py) and writes the
outcome back. A request to a node that is down waits until it starts again.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Index,
    String,
    Table,
    Text,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine

from gateway.store.db import metadata

PENDING, TAKEN, DONE = "pending", "taken", "done"  # written, handed to the spool, answered
KEEP_DAYS = 30  # answered requests are kept this long (the audit log keeps who asked)

queue_requests = Table(
    "queue_requests",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("node", String(128), nullable=False),  # as in node_status
    Column("op", String(16), nullable=False),  # gateway.store.queue_control.OPS
    Column("job", String(128)),  # a job or queue id; None: every job (flush)
    Column("requested_by", String(128), nullable=False),
    Column("requested_at", DateTime(timezone=True), nullable=False),
    Column("state", String(16), nullable=False),
    Column("done_at", DateTime(timezone=True)),
    Column("ok", Boolean),
    Column("message", Text),
    Index("ix_queue_requests_node_state", "node", "state"),
)


def channel(prefix: str) -> str:
    """The Redis channel on which a new request names its node (gateway/app/queue_requests.py)."""
    return f"{prefix}queue:requests"


def add(engine: Engine, node: str, op: str, job: str | None, by: str) -> str:
    """A new request for `node`; its id."""
    request_id = uuid.uuid4().hex
    with engine.begin() as conn:
        conn.execute(
            insert(queue_requests).values(
                id=request_id,
                node=node,
                op=op,
                job=job,
                requested_by=by,
                requested_at=datetime.now(UTC),
                state=PENDING,
            )
        )
    return request_id


def open_for(engine: Engine, node: str) -> list[dict[str, Any]]:
    """The node's requests not answered yet (pending or taken), oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(queue_requests)
            .where(queue_requests.c.node == node, queue_requests.c.state != DONE)
            .order_by(queue_requests.c.requested_at)
        ).mappings()
        return [dict(r) for r in rows]


def mark_taken(conn: Connection, request_id: str) -> None:
    """Handed to the node's spool (in the caller's transaction: the node's writer)."""
    conn.execute(
        update(queue_requests)
        .where(queue_requests.c.id == request_id, queue_requests.c.state == PENDING)
        .values(state=TAKEN)
    )


def mark_done(conn: Connection, request_id: str, ok: bool, message: str) -> None:
    conn.execute(
        update(queue_requests)
        .where(queue_requests.c.id == request_id)
        .values(state=DONE, ok=ok, message=message, done_at=datetime.now(UTC))
    )


def get(engine: Engine, request_id: str) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = (
            conn.execute(select(queue_requests).where(queue_requests.c.id == request_id))
            .mappings()
            .first()
        )
    return None if row is None else dict(row)


def purge(engine: Engine, now: datetime, keep_days: int = KEEP_DAYS) -> int:
    """Answered requests older than `keep_days` go; unanswered ones stay (their node may
    come back)."""
    cutoff = now - timedelta(days=keep_days)
    with engine.begin() as conn:
        return conn.execute(
            delete(queue_requests).where(
                queue_requests.c.state == DONE, queue_requests.c.done_at < cutoff
            )
        ).rowcount
