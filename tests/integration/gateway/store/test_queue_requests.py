"""Queue requests for another node (gateway/store/queue_requests.py) on SQLite and the
real PostgreSQL: a node sees only its own open requests, oldest first; taken, then
done with the outcome; answered ones are purged after KEEP_DAYS, open ones never."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from gateway.store import queue_requests as qr


def test_a_request_from_written_to_answered_and_purged(engine):
    first = qr.add(engine, "node-b", "delete", "job1", "olga")
    second = qr.add(engine, "node-b", "flush", None, "olga")
    other = qr.add(engine, "node-c", "hold", "job9", "olga")
    assert [r["id"] for r in qr.open_for(engine, "node-b")] == [first, second]
    with engine.begin() as conn:
        qr.mark_taken(conn, first)
        qr.mark_done(conn, second, False, "no such job")
    assert [(r["id"], r["state"]) for r in qr.open_for(engine, "node-b")] == [(first, qr.TAKEN)]
    with engine.begin() as conn:
        qr.mark_done(conn, first, True, "deleted job1")
    done = qr.get(engine, first)
    assert (done["state"], done["ok"], done["message"]) == (qr.DONE, True, "deleted job1")
    assert qr.open_for(engine, "node-b") == []
    old = datetime.now(UTC) - timedelta(days=qr.KEEP_DAYS + 1)
    with engine.begin() as conn:
        conn.execute(update(qr.queue_requests).values(requested_at=old))
        conn.execute(
            update(qr.queue_requests).where(qr.queue_requests.c.id == first).values(done_at=old)
        )
    assert qr.purge(engine, datetime.now(UTC)) == 1
    assert qr.get(engine, first) is None
    assert qr.get(engine, second) is not None  # answered just now: kept
    assert [r["id"] for r in qr.open_for(engine, "node-c")] == [other]  # open: kept
