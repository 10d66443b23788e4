"""Per-mailbox antivirus policy and the attachment store on SQLite and the real PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, select, text

from gateway.model import AvPolicy, Envelope, Infection, MessageContext
from gateway.store import attachments, av_policy, ledger
from gateway.store.attachments import Attachment
from gateway.store.db import Database
from tests.support.ledgerseed import message_row, recipient_row
from tests.support.virusmail import EICAR, Payload, Shapes

PG = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"


def _postgres_available() -> bool:
    try:
        with create_engine(PG).connect() as conn:
            conn.execute(text("select 1"))
        return True
    except Exception:  # noqa: BLE001 - any failure means no PostgreSQL here
        return False


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path):
    if request.param == "sqlite":
        database = Database(f"sqlite:///{tmp_path / 'store.db'}")
        yield database
        database.close()
        return
    if not _postgres_available():
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    database = Database(f"{PG}?options=-csearch_path%3D{schema}")
    try:
        yield database
    finally:
        database.close()
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def test_mailbox_overrides_domain_overrides_default_field_by_field(db):
    engine = db.engine
    av_policy.set_policy(engine, "@Example.test", mode="detect", actor="admin")
    av_policy.set_policy(engine, "Bob@example.test", keep_original=False)
    av_policy.set_policy(engine, "eve@example.test", enabled=False)
    got = asyncio.run(
        av_policy.load_av_policies(
            db,
            ["Bob@Example.test", "carol@example.test", "eve@example.test", "x@other.test", "junk"],
        )
    )
    assert got["Bob@Example.test"] == AvPolicy(enabled=True, mode="detect", keep_original=False)
    assert got["carol@example.test"] == AvPolicy(mode="detect")
    assert got["eve@example.test"] == AvPolicy(enabled=False, mode="detect")
    assert got["x@other.test"] == AvPolicy()
    assert got["junk"] == AvPolicy()
    rows = av_policy.fetch_rows(engine, ["bob@example.test", "@example.test"])
    sources = av_policy.resolve(rows, "bob@example.test").sources
    assert sources == {
        "enabled": "default",
        "mode": "@example.test",
        "keep_original": "bob@example.test",
    }


def test_set_keeps_unnamed_fields_and_clear_inherits_again(db):
    engine = db.engine
    av_policy.set_policy(engine, "bob@example.test", mode="detect", keep_original=False)
    row = av_policy.set_policy(engine, "bob@example.test", enabled=False)
    assert (row["enabled"], row["mode"], row["keep_original"]) == (False, "detect", False)
    assert av_policy.clear_policy(engine, "bob@example.test")
    assert not av_policy.clear_policy(engine, "bob@example.test")
    assert av_policy.policies_for(engine, ["bob@example.test"])["bob@example.test"] == AvPolicy()
    with pytest.raises(ValueError, match="mode"):
        av_policy.set_policy(engine, "bob@example.test", mode="delete")
    with pytest.raises(ValueError, match="neither a mailbox"):
        av_policy.set_policy(engine, "example.test", mode="clean")


def test_attachments_are_deduplicated_reported_once_and_purged(db):
    engine = db.engine
    now = datetime.now(UTC)
    same = Attachment("2", "report.doc", b"same bytes in two messages")
    with engine.begin() as conn:
        for qid in ("Q1", "Q2"):
            ledger.record(
                conn, message_row(qid, now), [recipient_row(qid, "user@example.test", now)]
            )
            attachments.store_attachments(conn, qid, [same], now - timedelta(days=1))
        ledger.record(conn, message_row("Q3", now), [recipient_row("Q3", "user@example.test", now)])
        attachments.store_attachments(
            conn, "Q3", [Attachment("3", None, b"old")], now - timedelta(days=40)
        )
    with engine.connect() as conn:
        blobs = conn.execute(select(attachments.attachment_blobs.c.sha256)).all()
    assert len(blobs) == 2  # one blob for the two identical attachments
    since = now - timedelta(days=2)
    assert attachments.blobs_to_rescan(engine, since) == [same.sha256]
    assert attachments.blob(engine, same.sha256) == same.data
    rows = attachments.record_missed_virus(engine, same.sha256, "Worm.New", since, now, "v2")
    assert sorted(r["message_id"] for r in rows) == ["Q1", "Q2"]
    assert attachments.record_missed_virus(engine, same.sha256, "Worm.New", since, now, "v2") == []
    assert attachments.blobs_to_rescan(engine, since) == []
    with engine.connect() as conn:
        feedback = conn.execute(select(ledger.feedback)).all()
    assert {(f.message_id, f.kind, f.source) for f in feedback} == {
        ("Q1", ledger.MISSED_VIRUS, "rescan"),
        ("Q2", ledger.MISSED_VIRUS, "rescan"),
    }
    assert feedback[0].details["virus"] == "Worm.New"
    assert attachments.purge(engine, now, retention_days=30) == (1, 1)
    assert attachments.blob(engine, same.sha256) == same.data


def test_attachments_of_a_message():
    raw = Shapes(Payload("notes.txt", b"hello")).uuencode_inline(EICAR, "x.com", "a1").encode()
    ctx = MessageContext(
        "q", Envelope("", ("b@example.test",), "192.0.2.1"), raw, datetime.now(UTC)
    )
    [found] = attachments.attachments_of(ctx.parts)
    assert (found.part_id, found.filename, found.data) == ("1", "x.com", EICAR)
    raw = Shapes(Payload("notes.txt", b"hello")).base64(EICAR, "a.doc", "a2").encode()
    ctx = MessageContext(
        "q", Envelope("", ("b@example.test",), "192.0.2.1"), raw, datetime.now(UTC)
    )
    assert [a.part_id for a in attachments.attachments_of(ctx.parts)] == ["2", "3"]
    assert [
        a.filename for a in attachments.kept_after_delivery(ctx.parts, [Infection("2", "V")])
    ] == ["notes.txt"]
    assert attachments.kept_after_delivery(ctx.parts, [Infection("", "V")]) == []
