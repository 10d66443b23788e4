"""Hostile input through real SMTP on loopback (issue 15): for each class, what the
client hears, what the next hop receives and what the ledger says."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from gateway.store import ledger
from tests.support.mail import RawSmtp, message

ROUTING_TRICKS = [
    "user%elsewhere.test@example.test",  # the percent hack
    "elsewhere.test!user@example.test",  # UUCP bang path
    "user!elsewhere.test@example.test",
    '"user@elsewhere.test"@example.test',  # a quoted local part holding an address
    '"user%elsewhere.test"@example.test',
]


def rows_of(gw, table, where=None, count=1, timeout=10.0):
    """Rows of a ledger table (polled until `count` of them match `where`)."""
    deadline = time.monotonic() + timeout
    while True:
        with gw.gateway.db.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(select(table))]
        rows = [r for r in rows if where is None or where(r)]
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


def session(port: int, sender: str = "alice@sender.test") -> RawSmtp:
    client = RawSmtp(port)
    client.reply()
    client.cmd("EHLO client.sender.test")
    assert client.cmd(f"MAIL FROM:<{sender}>").startswith("250")
    return client


def send_data(client: RawSmtp, data: bytes) -> str:
    assert client.cmd("DATA").startswith("354")
    client.send(data.replace(b"\r\n.", b"\r\n..") + b"\r\n.\r\n")
    return client.reply()


@pytest.mark.parametrize("rcpt", ROUTING_TRICKS)
def test_routing_tricks_in_the_local_part_are_refused(gateway, sink, rcpt):
    client = session(gateway.port)
    assert client.cmd(f"RCPT TO:<{rcpt}>").startswith("550 5.7.1")
    assert client.cmd("RCPT TO:<bob@example.test>").startswith("250")
    assert send_data(client, message(subject="tricks")).startswith("250")
    client.close()
    got = sink.wait_for(1)
    assert [m.rcpts for m in got] == [("bob@example.test",)]
    # a quoted local part that needs no quotes is recorded without them
    spelled = (rcpt, rcpt.replace('"', ""))
    refused = rows_of(gateway, ledger.refusals, lambda r: r["rcpt"] in spelled)
    assert [(r["stage"], r["source"], r["reply"][:9]) for r in refused] == [
        ("rcpt", "relay", "550 5.7.1")
    ]


def test_a_domain_may_allow_routing_syntax(make_gateway, sink):
    gw = make_gateway(domains={"allow_routing_syntax": ["example.test"]})
    client = session(gw.port)
    assert client.cmd("RCPT TO:<user%legacy.test@example.test>").startswith("250")
    assert client.cmd("RCPT TO:<user%legacy.test@other.test>").startswith("550 5.7.1")
    assert send_data(client, message()).startswith("250")
    client.close()
    assert sink.wait_for(1)[0].rcpts == ("user%legacy.test@example.test",)


# Every header the gateway owns, as a sender would forge it (ours: mx.example.test).
FORGED = [
    b"X-Spam-Flag: FORGED-NO",
    b"X-Spam-Score: -99 FORGED",
    b"X-Spam-Status: No, score=-99 FORGED",
    b"X-Virus-Scanned: FORGED",
    b"X-Virus-Status: FORGED-Clean",
    b"Authentication-Results: mx.example.test; dkim=pass header.d=FORGED.test",
]


def queue_id_of(reply: str) -> str:
    return reply.rsplit(" ", 1)[1]


def recipient_symbols(gw, queue_id: str) -> set[str]:
    rows = rows_of(gw, ledger.recipients, lambda r: r["message_id"] == queue_id)
    return {s["name"] for r in rows for s in r["symbols"]}


@pytest.mark.parametrize("forged", FORGED, ids=lambda f: f.split(b":")[0].decode())
@pytest.mark.parametrize(
    "joined",
    [b"X-Note: a\r%s\r\n", b"X-Note: a\r\n folded\r%s\r\n", b"X-Note: a\r\r%s\r\n"],
    ids=["after-field", "after-folding", "double-cr"],
)
def test_our_headers_forged_behind_a_bare_cr_never_reach_the_next_hop(
    gateway, sink, forged, joined
):
    data = message(subject="bare cr").replace(b"MIME-Version", joined % forged + b"MIME-Version")
    client = session(gateway.port)
    assert client.cmd("RCPT TO:<bob@example.test>").startswith("250")
    reply = send_data(client, data)
    client.close()
    assert reply.startswith("250")
    got = sink.wait_for(1)[0].data
    assert b"\r" not in got.replace(b"\r\n", b""), "a bare CR reached the next hop"
    head = got.split(b"\r\n\r\n", 1)[0]
    assert b"FORGED" not in head
    if forged.startswith(b"X-Spam-Flag"):
        assert head.count(b"\r\nX-Spam-Flag: NO\r\n") == 1  # ours, once
    assert "BARE_CR" in recipient_symbols(gateway, queue_id_of(reply))


def test_nul_bytes_are_removed_and_never_passed_on(gateway, sink):
    data = message(subject="nul\0here", body="body\0with a nul\r\n")
    client = session(gateway.port)
    assert client.cmd("RCPT TO:<bob@example.test>").startswith("250")
    reply = send_data(client, data)
    client.close()
    assert reply.startswith("250")
    got = sink.wait_for(1)[0].data
    assert b"\0" not in got
    assert b"Subject: nulhere\r\n" in got and b"bodywith a nul\r\n" in got
    assert "NUL_BYTES" in recipient_symbols(gateway, queue_id_of(reply))
