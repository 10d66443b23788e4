"""Nothing a message brings (its queue id, its spool file names) lands in the
interpreter's table of interned strings. That table is one dict for the whole
process, already filled by the imported libraries to the edge of a resize: when
pathlib interned two to four spool names per message, it was reallocated at twice
its size (3.7 MiB, kept) after about 23,000 messages (docs/performance.md, "Memory
over many messages"). The real gateway, spool, delivery and heartbeat, with
sys.intern watched while mail goes through and is delivered."""

from __future__ import annotations

import re
import smtplib
import sys
import threading

from sqlalchemy import select

from gateway.store import ledger
from tests.support.mail import message
from tests.support.wait import wait_until

MESSAGES = 30


def test_a_message_adds_no_interned_string(make_gateway, sink, monkeypatch):
    gw = make_gateway(report={"heartbeat_interval": 0.2})
    interned: list[str] = []
    lock = threading.Lock()
    real = sys.intern

    def watched(text: str) -> str:
        with lock:
            interned.append(text)
        return real(text)

    monkeypatch.setattr(sys, "intern", watched)
    with smtplib.SMTP("127.0.0.1", gw.port, timeout=30) as client:
        for i in range(MESSAGES):
            client.sendmail("alice@sender.test", ["bob@example.test"], message(f"check {i}"))
    sink.wait_for(MESSAGES, 30)
    wait_until(lambda: gw.gateway.delivery.pending_jobs == 0 and not gw.gateway.spool.list_jobs())
    with gw.gateway.db.engine.connect() as conn:
        queue_ids = [row.id for row in conn.execute(select(ledger.messages.c.id))]
    monkeypatch.setattr(sys, "intern", real)

    assert len(queue_ids) == MESSAGES
    ids = re.compile("|".join(re.escape(q) for q in queue_ids))
    with lock:
        per_message = sorted({s for s in interned if ids.search(s)})
    assert per_message == [], per_message[:6]
