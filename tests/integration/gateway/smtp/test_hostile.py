"""Hostile input through real SMTP on loopback (issue 15): for each class, what the
client hears, what the next hop receives and what the ledger says."""

from __future__ import annotations

import base64
import io
import socket
import time
import zipfile

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


def test_8bit_addresses_need_smtputf8(gateway, sink):
    client = RawSmtp(gateway.port)
    client.reply()
    client.cmd("EHLO client.sender.test")
    assert client.cmd("MAIL FROM:<jörg@sender.test>").startswith("553 5.6.7")
    assert client.cmd("MAIL FROM:<alice@sender.test>").startswith("250")
    assert client.cmd("RCPT TO:<björn@example.test>").startswith("553 5.6.7")
    client.send(b"RCPT TO:<bj\xf6rn@example.test>\r\n")  # latin-1: not UTF-8 at all
    assert client.reply().startswith("553 5.6.7")
    assert client.cmd("RSET").startswith("250")
    assert client.cmd("MAIL FROM:<jörg@sender.test> SMTPUTF8").startswith("250")
    assert client.cmd("RCPT TO:<björn@example.test>").startswith("250")
    assert send_data(client, message(sender="jörg@sender.test")).startswith("250")
    client.close()
    got = sink.wait_for(1)
    assert [(m.mail_from, m.rcpts) for m in got] == [("jörg@sender.test", ("björn@example.test",))]


def test_a_delivery_that_raises_is_retried_with_backoff_and_bounced_at_the_window(
    make_gateway, sink, monkeypatch, caplog
):
    """A bug in delivery (here injected: the transaction raises) counts as a failed
    attempt each time, waits its backoff, and ends in a bounce when the window is over."""
    from gateway.delivery import outbound

    real = outbound.Delivery._mail_transaction

    async def broken(self, client, host, job, data, rcpts):
        if job.kind == "message":
            raise RuntimeError("injected fault")
        return await real(self, client, host, job, data, rcpts)

    monkeypatch.setattr(outbound.Delivery, "_mail_transaction", broken)
    gw = make_gateway(delivery={"retry_window": 2.5})
    caplog.set_level("WARNING", logger="gateway.delivery.outbound")
    client = session(gw.port, sender="alice@example.test")
    assert client.cmd("RCPT TO:<bob@example.test>").startswith("250")
    reply = send_data(client, message(sender="alice@example.test", subject="doomed"))
    client.close()
    assert reply.startswith("250")
    qid = queue_id_of(reply)
    rows = rows_of(
        gw,
        ledger.recipients,
        lambda r: r["message_id"] == qid and r["status"] == "bounced",
        timeout=30,
    )
    assert [r["rcpt"] for r in rows] == ["bob@example.test"]
    # retried on the schedule (0.3, 0.5, 1.0 s) until 2.5 s had passed: a few attempts,
    # never a hot loop, each one logged once with the job's id
    assert 3 <= rows[0]["attempts"] <= 6
    assert "injected fault" in rows[0]["last_error"]
    logged = [r for r in caplog.records if "failed unexpectedly" in r.getMessage()]
    assert len(logged) == rows[0]["attempts"]
    assert all(qid in r.getMessage() for r in logged)
    bounce = sink.wait_for(1, timeout=30)[0]  # the DSN, to the sender (one of ours)
    assert bounce.rcpts == ("alice@example.test",) and bounce.mail_from == ""
    assert b"bob@example.test" in bounce.data and b"injected fault" in bounce.data
    deadline = time.monotonic() + 10
    while gw.gateway.delivery.pending_jobs and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gw.gateway.delivery.pending_jobs == 0


def nested_multipart(levels: int) -> bytes:
    out = b"From: a@sender.test\r\nTo: bob@example.test\r\nSubject: deep\r\nMIME-Version: 1.0\r\n"
    for i in range(levels):
        out += b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i)
    out += b"Content-Type: text/plain\r\n\r\nhi\r\n"
    return out + b"".join(b"--b%d--\r\n" % i for i in reversed(range(levels)))


def test_mime_nested_past_the_limit_is_refused_with_a_plain_reason(gateway, sink):
    client = session(gateway.port)
    assert client.cmd("RCPT TO:<bob@example.test>").startswith("250")
    reply = send_data(client, nested_multipart(1000))
    assert reply == "550 5.6.0 Message structure refused: MIME nested deeper than 50"
    # the session goes on, and a sane message still gets through
    assert client.cmd("MAIL FROM:<alice@sender.test>").startswith("250")
    assert client.cmd("RCPT TO:<bob@example.test>").startswith("250")
    assert send_data(client, nested_multipart(10)).startswith("250")
    client.close()
    assert len(sink.wait_for(1)) == 1
    rows = rows_of(gateway, ledger.refusals, lambda r: r["source"] == "mime_limits")
    assert [(r["stage"], r["rcpt"], r["reply"]) for r in rows] == [
        ("data", "bob@example.test", reply)
    ]


def test_more_parts_than_the_limit_are_refused(make_gateway, sink):
    gw = make_gateway(smtp={"max_mime_parts": 100})
    many = b"Subject: many\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n"
    many += b"--x\r\nContent-Type: text/plain\r\n\r\nhi\r\n" * 200 + b"--x--\r\n"
    client = session(gw.port)
    assert client.cmd("RCPT TO:<bob@example.test>").startswith("250")
    assert send_data(client, many).startswith("550 5.6.0 Message structure refused: more than 100")
    client.close()
    assert rows_of(gw, ledger.refusals, lambda r: r["source"] == "mime_limits")


def two_boundaries(payload: bytes) -> bytes:
    """EICAR in the part only the second boundary delimits."""
    return (
        b"From: a@sender.test\r\nTo: bob@example.test\r\nSubject: ambiguous\r\n"
        b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="one"; boundary="two"\r\n'
        b"\r\n--one\r\nContent-Type: text/plain\r\n\r\nnothing to see\r\n"
        b"--two\r\nContent-Type: application/octet-stream\r\n"
        b'Content-Disposition: attachment; filename="x.com"\r\n\r\n'
        + payload
        + b"\r\n--two--\r\n--one--\r\n"
    )


def test_ambiguous_mime_structure_is_quarantined_not_delivered(make_gateway, clamd, sink):
    from tests.support.virusmail import EICAR

    gw = make_gateway(clamav={"socket": str(clamd.socket), "timeout": 10.0})
    client = session(gw.port)
    assert client.cmd("RCPT TO:<bob@example.test>").startswith("250")
    reply = send_data(client, two_boundaries(EICAR))
    client.close()
    assert reply.startswith("250")
    rows = rows_of(gw, ledger.recipients, lambda r: r["message_id"] == queue_id_of(reply))
    assert [r["action"] for r in rows] == ["quarantine"]
    # neither our reading nor clamd's (of the parts and of the whole message) finds the
    # EICAR that a client reading the second boundary would show: the ambiguity holds it
    assert any("ambiguous MIME structure" in reason for reason in rows[0]["reasons"])
    assert "MIME_AMBIGUOUS" in {s["name"] for s in rows[0]["symbols"]}
    time.sleep(1.0)  # nothing may arrive
    assert sink.for_rcpt("bob@example.test") == []


def test_a_bug_in_a_hook_answers_451_and_logs_the_traceback(gateway, sink, monkeypatch, caplog):
    from gateway.smtp.handler import GatewayHandler

    async def broken(self, *args):
        raise ZeroDivisionError("secret internal detail")

    monkeypatch.setattr(GatewayHandler, "handle_RCPT", broken)
    caplog.set_level("ERROR", logger="gateway.smtp.protocol")
    client = RawSmtp(gateway.port)
    client.reply()
    client.cmd("EHLO client.sender.test")
    assert client.cmd("MAIL FROM:<alice@sender.test>").startswith("250")
    reply = client.cmd("RCPT TO:<bob@example.test>")
    assert reply == "451 4.3.0 Internal error, please try again later"
    assert client.cmd("NOOP").startswith("250")  # the session survives
    client.close()
    logged = [r for r in caplog.records if r.exc_info and r.exc_info[0] is ZeroDivisionError]
    assert len(logged) == 1


def zip_of(members: list[tuple[str, bytes | int]]) -> bytes:
    """A zip; a member given as an int is that many zero bytes, written in chunks."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name, content in members:
            if isinstance(content, bytes):
                archive.writestr(name, content)
                continue
            with archive.open(name, "w", force_zip64=True) as fh:
                chunk = bytes(1 << 20)
                for _ in range(content >> 20):
                    fh.write(chunk)
    return buf.getvalue()


def with_attachment(name: str, data: bytes) -> bytes:
    encoded = base64.encodebytes(data).replace(b"\n", b"\r\n")
    return (
        b"From: a@sender.test\r\nTo: bob@example.test\r\nSubject: bomb\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="x"\r\n\r\n--x\r\n'
        b"Content-Type: text/plain\r\n\r\nsee attached\r\n--x\r\n"
        b'Content-Type: application/zip; name="%s"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\n%s--x--\r\n" % (name.encode(), encoded)
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    "shape",
    ["zeros", "nested", "deep"],
)
def test_archive_bombs_are_quarantined_not_delivered(make_gateway, clamd, sink, shape):
    if shape == "zeros":  # inside clamd's limits (it unpacks it and finds it clean)
        bomb = zip_of([("zeros.bin", 50 << 20)])
    elif shape == "nested":
        bomb = zip_of([("inner.zip", zip_of([("zeros.bin", 50 << 20)]))])
    else:
        bomb = b"payload"
        for level in range(8):
            bomb = zip_of([(f"level{level}.zip", bomb)])
    assert len(bomb) < 200_000
    gw = make_gateway(clamav={"socket": str(clamd.socket), "timeout": 30.0})
    client = session(gw.port)
    assert client.cmd("RCPT TO:<bob@example.test>").startswith("250")
    reply = send_data(client, with_attachment("bomb.zip", bomb))
    client.close()
    assert reply.startswith("250")
    rows = rows_of(gw, ledger.recipients, lambda r: r["message_id"] == queue_id_of(reply))
    assert [r["action"] for r in rows] == ["quarantine"]
    symbols = {s["name"] for s in rows[0]["symbols"]}
    assert {"AV_ARCHIVE_BOMB", "AV_LIMITS_EXCEEDED"} & symbols
    time.sleep(1.0)
    assert sink.for_rcpt("bob@example.test") == []


def test_an_ordinary_zip_is_delivered(make_gateway, clamd, sink):
    gw = make_gateway(clamav={"socket": str(clamd.socket), "timeout": 30.0})
    client = session(gw.port)
    assert client.cmd("RCPT TO:<bob@example.test>").startswith("250")
    report = zip_of([("report.txt", b"quarterly numbers, all fine\n" * 2000)])
    assert send_data(client, with_attachment("report.zip", report)).startswith("250")
    client.close()
    assert sink.wait_for(1)[0].rcpts == ("bob@example.test",)


def connect_from(port: int, source: str) -> RawSmtp:
    client = RawSmtp.__new__(RawSmtp)
    client.sock = socket.create_connection(("127.0.0.1", port), 10, source_address=(source, 0))
    client.buf = b""
    return client


def test_one_network_cannot_take_every_slot(make_gateway):
    gw = make_gateway(smtp={"max_sessions": 8, "max_sessions_per_ip": 4})  # 2 per /24
    first = [connect_from(gw.port, ip) for ip in ("127.0.0.1", "127.0.0.2")]
    assert all(c.reply().startswith("220") for c in first)
    third = connect_from(gw.port, "127.0.0.3")
    assert third.reply() == "421 4.7.0 Too many connections from your network, try again later"
    other = connect_from(gw.port, "127.0.1.1")  # another /24 still gets in
    assert other.reply().startswith("220")
    assert other.cmd("EHLO other.test").startswith("250")
    for c in [*first, third, other]:
        c.close()


def test_idle_sessions_before_mail_time_out_soon_but_transactions_do_not(make_gateway):
    gw = make_gateway(smtp={"idle_timeout": 1.0, "timeout": 30.0})
    idle = RawSmtp(gw.port)
    idle.reply()
    idle.cmd("EHLO idle.test")
    busy = session(gw.port)
    started = time.monotonic()
    assert idle.reply() == "421 4.4.2 Timeout, closing connection"
    assert time.monotonic() - started < 10
    time.sleep(1.5)  # well past the idle timeout: inside a transaction that is fine
    assert busy.cmd("RCPT TO:<bob@example.test>").startswith("250")
    busy.close()
    idle.close()


def test_the_idle_timeout_counts_from_the_last_command(make_gateway):
    """One timer a session, moved by each command (not a new one per command): a
    client that keeps talking is not cut off at the first command's deadline."""
    gw = make_gateway(smtp={"idle_timeout": 1.0, "timeout": 30.0})
    client = RawSmtp(gw.port)
    client.reply()
    started = time.monotonic()
    for _ in range(3):  # 1.8 s in all, never 1 s silent
        time.sleep(0.6)
        assert client.cmd("NOOP").startswith("250")
    last = time.monotonic()
    assert client.reply() == "421 4.4.2 Timeout, closing connection"
    assert time.monotonic() - started > 1.8
    assert 0.9 < time.monotonic() - last < 5
    client.close()


def test_clean_mode_removes_only_the_uuencoded_block_and_names_the_quarantine_item(
    make_gateway, clamd, sink
):
    import binascii

    from tests.support.virusmail import EICAR

    lines = [b"begin 644 eicar.com"]
    lines += [binascii.b2a_uu(EICAR[i : i + 45]).rstrip(b"\n") for i in range(0, len(EICAR), 45)]
    lines += [b"`", b"end"]
    body = b"Hello Bob,\r\n\r\nthe file:\r\n" + b"\r\n".join(lines) + b"\r\n\r\nBye, Alice\r\n"
    data = message(subject="uu").split(b"\r\n\r\n", 1)[0]
    data += b"\r\n\r\n" + body
    gw = make_gateway(clamav={"socket": str(clamd.socket), "timeout": 10.0})
    client = session(gw.port)
    assert client.cmd("RCPT TO:<bob@example.test>").startswith("250")
    reply = send_data(client, data)
    client.close()
    assert reply.startswith("250")
    got = sink.wait_for(1)[0].data
    text = got.split(b"\r\n\r\n", 1)[1]
    assert b"begin 644" not in text
    assert text.startswith(b"Hello Bob,\r\n\r\nthe file:\r\n")
    assert b"\r\n\r\nBye, Alice\r\n" in text
    item = f"{queue_id_of(reply)}.q0".encode()
    assert b"The uuencoded file (eicar.com) contained the virus" in text
    assert b"kept in quarantine as " + item in text


def test_the_listen_queue_holds_a_burst_of_connections(gateway):
    """A burst of clients waits in the kernel's queue instead of having its SYNs dropped
    (asyncio's default backlog of 100 overflowed at 100 messages a second)."""
    import subprocess

    listed = subprocess.run(
        ["ss", "-Hltn", f"sport = :{gateway.port}"], capture_output=True, text=True, check=True
    ).stdout.split()
    backlog = int(listed[2])  # for a listening socket, Send-Q is its backlog
    with open("/proc/sys/net/core/somaxconn") as fh:
        assert backlog == min(1024, int(fh.read()))
