"""The ledger's JSON columns are encoded once (for the spool job of an accepted mail)
and the text is what the database stores: the same text as SQLAlchemy's own encoding, whether the
rows come straight from the intake, back from a spool job after a crash, or from a
spool job written by an earlier version (structures, not text)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlalchemy import Text, cast, select

from gateway.store import ledger
from tests.support.ledgerseed import message_row

FILTERS = {
    "auth": {"symbols": [{"name": "SPF_PASS", "options": ["ip4"], "factor": 1.0}]},
    "classifier": {"symbols": [], "facts": {"model_version": "v3", "p": 0.12, "ok": True}},
    "rules": {"symbols": [], "error": "naïve é ünïcode"},
}
SYMBOLS = [{"name": "BAYES_HAM", "score": -1.5, "options": ["0.02"]}]


def message(queue_id: str, make) -> dict:
    when = datetime(2026, 12, 7, 19, 0, tzinfo=UTC)
    return message_row(
        queue_id,
        when,
        viruses=make([]),
        filters=make(FILTERS),
        timings_ms=make({"auth": 1.25, "total": 9.5}),
    )


def recipient(queue_id: str, make) -> dict:
    return {
        "message_id": queue_id,
        "rcpt": "bob@example.test",
        "domain": "example.test",
        "action": "accept",
        "score": -1.5,
        "status": "pending",
        "symbols": make(SYMBOLS),
        "reasons": make(["score -1.50"]),
    }


def stored_text(engine, queue_id: str) -> tuple:
    m, r = ledger.messages.c, ledger.recipients.c
    with engine.connect() as conn:
        found = conn.execute(
            select(
                cast(m.viruses, Text),
                cast(m.filters, Text),
                cast(m.timings_ms, Text),
                cast(r.symbols, Text),
                cast(r.reasons, Text),
            ).where(m.id == queue_id, r.message_id == m.id)
        ).one()
    return tuple(found)


def test_encoded_rows_store_the_same_text_as_sqlalchemy_encodes(engine):
    spooled = json.loads(
        json.dumps(
            {
                "message": ledger.to_jsonable(message("SPOOLED", ledger.encoded)),
                "recipients": [ledger.to_jsonable(recipient("SPOOLED", ledger.encoded))],
            }
        )
    )
    with engine.begin() as conn:
        ledger.record_many(
            conn,
            [
                (message("PLAIN", lambda v: v), [recipient("PLAIN", lambda v: v)]),
                (message("ENCODED", ledger.encoded), [recipient("ENCODED", ledger.encoded)]),
                (spooled["message"], spooled["recipients"]),  # after a crash
            ],
        )
    plain = stored_text(engine, "PLAIN")
    assert stored_text(engine, "ENCODED") == plain
    assert stored_text(engine, "SPOOLED") == plain
    with engine.connect() as conn:
        rows = conn.execute(select(ledger.messages.c.id, ledger.messages.c.filters)).all()
        rcpts = conn.execute(select(ledger.recipients.c.symbols)).scalars().all()
    assert {row.id: row.filters for row in rows} == dict.fromkeys(
        ("PLAIN", "ENCODED", "SPOOLED"), FILTERS
    )
    assert rcpts == [SYMBOLS] * 3


def test_a_spool_job_of_an_earlier_version_is_restored_as_it_was(engine):
    old_job = json.loads(
        json.dumps(
            {
                "message": ledger.to_jsonable(message("OLD", lambda v: v)),
                "recipients": [ledger.to_jsonable(recipient("OLD", lambda v: v))],
            }
        )
    )
    with engine.begin() as conn:
        ledger.record(conn, old_job["message"], old_job["recipients"])
        ledger.record(conn, message("NEW", ledger.encoded), [recipient("NEW", ledger.encoded)])
    assert stored_text(engine, "OLD") == stored_text(engine, "NEW")
    with engine.connect() as conn:
        got = conn.execute(select(ledger.messages.c.filters, ledger.messages.c.timings_ms)).all()
    assert [tuple(row) for row in got] == [(FILTERS, {"auth": 1.25, "total": 9.5})] * 2


def test_refused_and_encoded_rows_in_one_group_store_the_same_text(engine):
    """A commit group mixes accepted mail (encoded for its spool job) with refused or
    quarantined mail (structures): one insert for all, the same text either way, and a
    JSON column a row leaves out stays NULL."""
    bare = message("BARE", lambda v: v)
    del bare["viruses"]
    with engine.begin() as conn:
        ledger.record_many(
            conn,
            [
                (message("ENCODED", ledger.encoded), [recipient("ENCODED", ledger.encoded)]),
                (message("PLAIN", lambda v: v), [recipient("PLAIN", lambda v: v)]),
                (bare, []),
            ],
        )
    assert stored_text(engine, "PLAIN") == stored_text(engine, "ENCODED")
    with engine.connect() as conn:
        viruses = dict(conn.execute(select(ledger.messages.c.id, ledger.messages.c.viruses)).all())
    assert viruses == {"ENCODED": [], "PLAIN": [], "BARE": None}


def test_recording_leaves_the_callers_rows_as_they_were(engine):
    """The rows handed to the writer are the caller's (a failed group is retried write
    by write with the same ones): recording encodes into copies, never in place."""
    plain, rcpt = message("PLAIN", lambda v: v), recipient("PLAIN", lambda v: v)
    bare = message("BARE", lambda v: v)
    del bare["viruses"]
    spooled = json.loads(json.dumps(ledger.to_jsonable(message("SPOOLED", ledger.encoded))))
    given = [(plain, [rcpt]), (bare, []), (spooled, [])]
    before = [(dict(m), [dict(r) for r in rs]) for m, rs in given]
    with engine.begin() as conn:
        ledger.record_many(conn, given)
    assert [(m, rs) for m, rs in given] == before
    assert type(plain["filters"]) is dict and "viruses" not in bare
    assert type(spooled["received_at"]) is str and type(spooled["filters"]) is str
