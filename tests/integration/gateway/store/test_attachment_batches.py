"""Attachments of several delivered messages stored in one write (the database writer
makes the calls of a commit group at once): the same content is one blob, wherever it
came from, every attachment one reference, and a blob stored earlier is seen again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from gateway.store import attachments
from gateway.store.attachments import Attachment


def test_one_write_for_several_messages_stores_each_blob_once(engine):
    earlier = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    now = earlier + timedelta(days=6)
    shared = Attachment("2", "terms.pdf", b"the same terms for everyone" * 40)
    old = Attachment("3", "logo.png", b"\x89PNG a logo sent last week")
    with engine.begin() as conn:
        attachments.store_attachments(conn, "Q0", [old], earlier)
    with engine.begin() as conn:
        attachments.store_many(
            conn,
            [
                ("Q1", [shared, attachments.pack([old])[0]]),
                ("Q2", [shared, Attachment("3", None, b"only in Q2")]),
                ("Q3", []),
            ],
            now,
        )
    blobs = attachments.attachment_blobs.c
    with engine.connect() as conn:
        stored = {
            r.sha256: (r.first_seen, r.last_seen)
            for r in conn.execute(select(blobs.sha256, blobs.first_seen, blobs.last_seen))
        }
        refs = conn.execute(select(attachments.attachment_refs)).all()
    assert len(stored) == 3
    first, last = stored[old.sha256]
    assert (first.replace(tzinfo=UTC), last.replace(tzinfo=UTC)) == (earlier, now)
    first, last = stored[shared.sha256]
    assert (first.replace(tzinfo=UTC), last.replace(tzinfo=UTC)) == (now, now)
    assert sorted((r.message_id, r.part_id, r.filename) for r in refs) == [
        ("Q0", "3", "logo.png"),
        ("Q1", "2", "terms.pdf"),
        ("Q1", "3", "logo.png"),
        ("Q2", "2", "terms.pdf"),
        ("Q2", "3", None),
    ]
    assert attachments.blob(engine, shared.sha256) == shared.data
    assert attachments.blob(engine, old.sha256) == old.data
