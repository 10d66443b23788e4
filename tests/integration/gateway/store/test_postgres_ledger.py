"""The ledger and quarantine on the real PostgreSQL (the several-node setup)."""

from __future__ import annotations

import smtplib
import time

from sqlalchemy import select

from gateway.store import ledger
from tests.support.mail import message


def test_gateway_on_postgresql_records_the_ledger(make_gateway, sink, postgres_url):
    gw = make_gateway(store={"url": postgres_url})
    with smtplib.SMTP("127.0.0.1", gw.port) as client:
        client.sendmail("a@sender.test", ["bob@example.test"], message(subject="on pg"))
    sink.wait_for(1)
    engine = gw.gateway.db.engine
    assert engine.dialect.name == "postgresql"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            row = conn.execute(select(ledger.recipients)).first()
        if row is not None and row.status == "delivered":
            break
        time.sleep(0.05)
    with engine.connect() as conn:
        msg = conn.execute(select(ledger.messages)).one()
    assert msg.subject == "on pg" and msg.outcome == "accepted"
    assert row.status == "delivered" and row.delivered_at >= msg.received_at
