"""gateway.store.bulk: the writer's statements stored exactly as SQLAlchemy stores them
(the same text in the file, datetimes, booleans and floats included), its errors as
SQLAlchemy's, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import insert, select, text
from sqlalchemy.exc import IntegrityError

from gateway.store import bulk, ledger, quarantine

WHEN = datetime(2026, 12, 7, 22, 40, 1, 123456, tzinfo=UTC)


def message(queue_id: str) -> dict:
    return {
        "id": queue_id,
        "node": "n1",
        "received_at": WHEN,
        "decided_at": WHEN,
        "client_ip": "192.0.2.1",
        "client_hostname": None,
        "helo": "client.test",
        "tls": True,
        "mail_from": "a@example.org",
        "auth_account": None,
        "header_from": "Ä <a@example.org>",
        "subject": "naïve",
        "message_id_header": "<x@example.org>",
        "size": 10,
        "sha256": "0" * 64,
        "outcome": "accepted",
        "smtp_reply": "250 2.0.0 Ok",
        "virus_found": False,
        "viruses": ledger.encoded([]),
        "av_db_version": None,
        "model_version": "m1",
        "filters": ledger.encoded({"auth": {"symbols": []}}),
        "timings_ms": ledger.encoded({"total": 9.5}),
    }


def recipient(queue_id: str, rcpt: str) -> dict:
    return {
        "message_id": queue_id,
        "rcpt": rcpt,
        "domain": "example.test",
        "action": "accept",
        "score": 1.0 / 3,
        "spam": False,
        "symbols": ledger.encoded([]),
        "reasons": ledger.encoded(["score 0.33"]),
        "av_enabled": None,
        "av_mode": None,
        "virus_found": False,
        "cleaned": False,
        "original_kept": False,
        "status": "pending",
        "attempts": 0,
        "quarantine_id": None,
    }


def attempt(queue_id: str) -> dict:
    return {
        "message_id": queue_id,
        "job_id": f"{queue_id}.0",
        "kind": "message",
        "rcpt": "bob@example.test",
        "attempt": 1,
        "at": WHEN,
        "result": "delivered",
        "reply": "250 ok",
        "remote": "127.0.0.1:25",
    }


def stored(engine, table: str, key: str, value: str) -> tuple:
    """A row as the database holds it (no SQLAlchemy type processing on the way out)."""
    with engine.connect() as conn:
        row = conn.exec_driver_sql(f"SELECT * FROM {table} WHERE {key} = '{value}'").one()
    return tuple(v for k, v in zip(row._fields, row, strict=True) if k != "id")


def test_rows_are_stored_as_sqlalchemy_stores_them(engine):
    with engine.begin() as conn:
        conn.execute(ledger._INSERTS["messages"], [message("SA")])
        conn.execute(ledger._INSERTS["recipients"], [recipient("SA", "bob@example.test")])
        conn.execute(insert(ledger.delivery_attempts), [attempt("SA")])
        bulk.executemany(conn, ledger._INSERTS["messages"], [message("BULK")])
        bulk.executemany(
            conn, ledger._INSERTS["recipients"], [recipient("BULK", "bob@example.test")]
        )
        bulk.executemany(conn, ledger._INSERT_ATTEMPTS, [attempt("BULK")])
    assert (
        stored(engine, "messages", "id", "BULK")[1:] == stored(engine, "messages", "id", "SA")[1:]
    )
    assert (
        stored(engine, "recipients", "message_id", "BULK")[1:]
        == stored(engine, "recipients", "message_id", "SA")[1:]
    )
    assert (
        stored(engine, "delivery_attempts", "message_id", "BULK")[2:]
        == stored(engine, "delivery_attempts", "message_id", "SA")[2:]
    )
    # a delivery outcome: the update sets the same values either way
    with engine.begin() as conn:
        ledger.mark_many(conn, [("SA", ["bob@example.test"], "delivered", WHEN, None, 1)])
    with engine.begin() as conn:
        conn.execute(
            ledger._MARK,
            [
                {
                    "b_message_id": "BULK",
                    "b_rcpt": "bob@example.test",
                    "b_status": "delivered",
                    "b_last_error": None,
                    "b_delivered_at": WHEN,
                    "b_attempts": 1,
                }
            ],
        )
    assert (
        stored(engine, "recipients", "message_id", "BULK")[1:]
        == stored(engine, "recipients", "message_id", "SA")[1:]
    )
    with engine.connect() as conn:
        got = conn.execute(select(ledger.recipients.c.delivered_at)).scalars().all()
    assert [g.replace(tzinfo=UTC) for g in got] == [WHEN, WHEN]


def test_errors_are_sqlalchemys_and_roll_back_with_the_transaction(engine):
    with pytest.raises(IntegrityError), engine.begin() as conn:
        bulk.executemany(conn, ledger._INSERTS["messages"], [message("ONE")])
        bulk.executemany(conn, ledger._INSERTS["messages"], [message("ONE")])
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM messages")).scalar() == 0


def test_a_statement_with_defaults_to_fill_in_goes_through_sqlalchemy(engine):
    row = {k: v for k, v in recipient("DEF", "bob@example.test").items() if k != "attempts"}
    with engine.begin() as conn:
        bulk.executemany(conn, ledger._INSERTS["messages"], [message("DEF")])
        bulk.executemany(conn, ledger._INSERTS["recipients"], [row])
    with engine.connect() as conn:
        assert conn.execute(select(ledger.recipients.c.attempts)).scalar() == 0


def test_quarantine_items_are_stored_as_sqlalchemy_stores_them(engine):
    def item(item_id: str, message_id: str) -> dict:
        return quarantine.item_row(
            item_id, message_id, "example.test", ["bob@example.test", "ä@example.test"],
            quarantine.SPAM, "score 9.00", b"Subject: x\r\n\r\nbody\r\n", WHEN,
            mail_from="a@example.org", subject="x", score=9.0,
        )  # fmt: skip

    with engine.begin() as conn:
        bulk.executemany(conn, ledger._INSERTS["messages"], [message("SA"), message("BULK")])
        conn.execute(quarantine.quarantine.insert(), [item("SA.q0", "SA")])
        bulk.executemany(conn, quarantine.quarantine.insert(), [item("BULK.q0", "BULK")])
    assert (
        stored(engine, "quarantine", "message_id", "BULK")[1:]
        == stored(engine, "quarantine", "message_id", "SA")[1:]
    )
    assert quarantine.get(engine, "BULK.q0")["rcpts"] == ["bob@example.test", "ä@example.test"]
