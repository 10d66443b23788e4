"""Messages that arrive together are written together: each one's spool write hands its
ledger rows straight to the database writer, which commits the rows of every message
waiting at that moment in one transaction. When one message's rows fail, that group
must not lose or duplicate anyone else's: through real SMTP, a real clamd (attachments
are kept for rescans) and a real database on SQLite and PostgreSQL, whose trigger
refuses one message's row."""

from __future__ import annotations

import asyncio
import smtplib
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select, text

from gateway.store import attachments, ledger
from tests.support.virusmail import Payload, Shapes
from tests.support.wait import wait_until

SHARED = Payload("notes.txt", b"the same notes in every message\r\n")
REFUSED_SUBJECT = "Documents refused"  # Shapes: "Documents <ident>"

SQLITE_TRIGGER = [
    "CREATE TRIGGER refuse_one BEFORE INSERT ON messages "
    f"WHEN NEW.subject = '{REFUSED_SUBJECT}' "
    "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
]
POSTGRES_TRIGGER = [
    "CREATE FUNCTION refuse_one() RETURNS trigger AS $$ BEGIN "
    f"IF NEW.subject = '{REFUSED_SUBJECT}' THEN RAISE EXCEPTION 'refused by the test'; "
    "END IF; RETURN NEW; END $$ LANGUAGE plpgsql",
    "CREATE TRIGGER refuse_one BEFORE INSERT ON messages "
    "FOR EACH ROW EXECUTE FUNCTION refuse_one()",
]


def send(port: int, data: bytes) -> tuple[int, str]:
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
        client.ehlo("client.sender.test")
        client.mail("alice@sender.test")
        client.rcpt("bob@example.test")
        try:
            code, reply = client.data(data)
        except smtplib.SMTPDataError as exc:
            code, reply = exc.smtp_code, exc.smtp_error
    return code, reply.decode()


def rows(gw, table) -> list[dict]:
    with gw.gateway.db.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(table))]


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_a_group_that_fails_halfway_loses_and_duplicates_nothing(
    request, make_gateway, clamd, sink, database
):
    extra: dict = {"clamav": {"socket": str(clamd.socket), "attachment_retention_days": 30}}
    if database == "postgresql":
        extra["store"] = {"url": request.getfixturevalue("postgres_url")}
    gw = make_gateway(**extra)
    db = gw.gateway.db
    with db.engine.begin() as conn:
        for statement in SQLITE_TRIGGER if database == "sqlite" else POSTGRES_TRIGGER:
            conn.execute(text(statement))
    idents = ["m0", "m1", "refused", "m3", "m4", "m5"]
    mails = {
        ident: Shapes(SHARED).base64(f"report {ident}\r\n".encode() * 50, f"{ident}.pdf", ident)
        for ident in idents
    }
    # the writer is busy while all six arrive: they wait for it together, one group
    release = threading.Event()
    held = asyncio.run_coroutine_threadsafe(db.write(lambda conn: release.wait(60)), gw.loop)
    queue = gw.settings.spool.path / "queue"
    with ThreadPoolExecutor(len(idents)) as clients:
        replies = {i: clients.submit(send, gw.port, mails[i].encode()) for i in idents}
        wait_until(lambda: len(list(queue.glob("*.job"))) == len(idents), timeout=30)
        wait_until(lambda: db._writes.qsize() >= len(idents), timeout=10)
        release.set()
        got = {i: future.result() for i, future in replies.items()}
    held.result(10)

    assert got["refused"][0] == 451
    accepted = {i: reply.rsplit(" ", 1)[1] for i, (code, reply) in got.items() if code == 250}
    assert sorted(accepted) == ["m0", "m1", "m3", "m4", "m5"]
    delivered = sink.wait_for(5)
    assert sorted(m.data.split(b"Subject: Documents ", 1)[1][:2] for m in delivered) == [
        b"m0",
        b"m1",
        b"m3",
        b"m4",
        b"m5",
    ]
    # each accepted message once in the ledger, with its recipient, delivered
    wait_until(
        lambda: all(r["status"] == "delivered" for r in rows(gw, ledger.recipients)), timeout=20
    )
    assert sorted(r["id"] for r in rows(gw, ledger.messages)) == sorted(accepted.values())
    assert sorted(r["message_id"] for r in rows(gw, ledger.recipients)) == sorted(accepted.values())
    # the attachments of the five kept, none of the refused one's; the shared file once
    wait_until(lambda: len(rows(gw, attachments.attachment_refs)) == 10, timeout=20)
    refs = rows(gw, attachments.attachment_refs)
    assert sorted((r["message_id"], r["filename"]) for r in refs) == sorted(
        (qid, name) for i, qid in accepted.items() for name in (f"{i}.pdf", "notes.txt")
    )
    assert len(rows(gw, attachments.attachment_blobs)) == 6
    # nothing of the refused message is left in the spool; the others leave once delivered
    wait_until(lambda: list(queue.iterdir()) == [], timeout=20)
    assert len(sink.messages) == 5
