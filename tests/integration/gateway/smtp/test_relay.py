"""The relay core through real SMTP: a real client, the gateway, a real sink."""

from __future__ import annotations

import email
import hashlib
import smtplib
import socket
import time

import pytest
from sqlalchemy import select

from gateway.store import ledger
from tests.support.mail import RawSmtp, message, open_data


def send(port: int, rcpts: list[str], data: bytes, sender: str = "alice@sender.test"):
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as client:
        client.ehlo("client.sender.test")
        client.mail(sender)
        for rcpt in rcpts:
            code, text = client.rcpt(rcpt)
            assert code == 250, text
        return client.data(data)


def ledger_rows(gw, table):
    with gw.gateway.db.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(table))]


def test_message_is_delivered_with_received_header_and_queue_id(gateway, sink):
    data = message(subject="quarterly report")
    code, text = send(gateway.port, ["bob@example.test"], data)
    assert code == 250
    queue_id = text.decode().rsplit(" ", 1)[1]
    got = sink.wait_for(1)[0]
    assert got.rcpts == ("bob@example.test",)
    assert got.mail_from == "alice@sender.test"
    first_line = got.data.split(b"\r\n", 1)[0].decode()
    assert first_line.startswith("Received: from client.sender.test")
    assert queue_id in got.data.split(b"\r\n\r\n", 1)[0].decode()
    # the original message follows our headers, byte for byte
    assert got.data.endswith(data)
    parsed = email.message_from_bytes(got.data)
    assert parsed["X-Spam-Flag"] == "NO"


def test_ledger_records_received_decided_delivered(gateway, sink):
    data = message()
    code, text = send(gateway.port, ["bob@example.test", "carol@other.test"], data)
    assert code == 250
    sink.wait_for(1)
    queue_id = text.decode().rsplit(" ", 1)[1]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        rcpts = [r for r in ledger_rows(gateway, ledger.recipients) if r["message_id"] == queue_id]
        if rcpts and all(r["status"] == "delivered" for r in rcpts):
            break
        time.sleep(0.05)
    msg = next(m for m in ledger_rows(gateway, ledger.messages) if m["id"] == queue_id)
    assert msg["outcome"] == "accepted"
    assert msg["client_ip"] == "127.0.0.1"
    assert msg["size"] == len(data) and data.endswith(b"\r\n")
    assert msg["sha256"] == hashlib.sha256(data).hexdigest()  # the message as received
    assert sorted(r["rcpt"] for r in rcpts) == ["bob@example.test", "carol@other.test"]
    for r in rcpts:
        assert r["status"] == "delivered"
        assert msg["received_at"] <= msg["decided_at"] <= r["delivered_at"]


def test_relay_denied_for_other_domains_and_recorded_as_evidence(gateway, sink):
    client = RawSmtp(gateway.port)
    client.reply()
    client.cmd("EHLO client.test")
    client.cmd("MAIL FROM:<alice@sender.test>")
    assert client.cmd("RCPT TO:<victim@elsewhere.test>").startswith("550 5.7.1")
    assert client.cmd("RCPT TO:<bob@example.test.evil.test>").startswith("550 5.7.1")
    assert client.cmd("RCPT TO:<bob@example.test>").startswith("250")
    client.close()
    deadline = time.monotonic() + 5
    while len(rows := ledger_rows(gateway, ledger.refusals)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [(r["rcpt"], r["source"], r["stage"]) for r in rows] == [
        ("victim@elsewhere.test", "relay", "rcpt"),
        ("bob@example.test.evil.test", "relay", "rcpt"),
    ]
    assert rows[0]["client_ip"] == "127.0.0.1" and rows[0]["helo"] == "client.test"
    assert rows[0]["mail_from"] == "alice@sender.test" and rows[0]["reply"].startswith("550")


def test_too_many_recipients_get_452(gateway):
    client = RawSmtp(gateway.port)
    client.reply()
    client.cmd("EHLO client.test")
    client.cmd("MAIL FROM:<alice@sender.test>")
    replies = [client.cmd(f"RCPT TO:<user{i}@example.test>") for i in range(7)]
    assert all(r.startswith("250") for r in replies[:5])  # max_recipients = 5
    assert all(r.startswith("452 4.5.3") for r in replies[5:])
    client.close()


@pytest.mark.parametrize("address", ["<bob@@example.test>", "<bob example.test>", "<bob@>", "<@>"])
def test_malformed_addresses_get_501(gateway, address):
    client = RawSmtp(gateway.port)
    client.reply()
    client.cmd("EHLO client.test")
    assert client.cmd(f"MAIL FROM:{address}").startswith("501 5.")
    assert client.cmd("MAIL FROM:<alice@sender.test>").startswith("250")
    assert client.cmd(f"RCPT TO:{address}").startswith("501 5.")
    client.close()


def test_oversize_message_gets_552_and_server_stays_up(gateway, sink):
    big = message(body="z" * 998 + "\r\n") + (b"z" * 998 + b"\r\n") * 1100  # > 1 MiB limit
    code, text = send(gateway.port, ["bob@example.test"], big)
    assert code == 552
    assert text.startswith(b"5.3.4")
    # declared too big in MAIL FROM: refused before DATA
    client = RawSmtp(gateway.port)
    client.reply()
    client.cmd("EHLO client.test")
    assert client.cmd("MAIL FROM:<alice@sender.test> SIZE=99999999").startswith("552 5.3.4")
    client.close()
    code, _ = send(gateway.port, ["bob@example.test"], message(subject="still up"))
    assert code == 250
    assert len(sink.wait_for(1)) == 1


def test_bare_lf_is_normalised(gateway, sink):
    data = b"From: a@sender.test\nTo: bob@example.test\nSubject: bare\n\nline one\nline two\n"
    client = open_data(gateway.port)
    client.send(data + b"\r\n.\r\n")
    assert client.reply().startswith("250")
    client.close()
    got = sink.wait_for(1)[0].data
    assert b"line one\r\nline two\r\n" in got
    assert b"\n" not in got.replace(b"\r\n", b"")


def test_lines_over_998_characters_are_accepted_and_broken_for_delivery(gateway, sink):
    long_line = "w" * 5000
    data = message(body=long_line + "\r\nshort\r\n")
    code, _ = send(gateway.port, ["bob@example.test"], data)
    assert code == 250
    delivered = sink.wait_for(1)[0].data
    assert max(len(line) for line in delivered.split(b"\r\n")) <= 998
    body = delivered.split(b"\r\n\r\n", 1)[1]
    assert body.replace(b"\r\n", b"") == (long_line + "short").encode()


def test_8bit_without_8bitmime_is_accepted_and_relayed_intact(gateway, sink):
    body = "Grüße aus Köln, 你好\r\n".encode()
    data = (
        b"From: a@sender.test\r\nTo: bob@example.test\r\nSubject: 8bit\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n\r\n" + body
    )
    client = open_data(gateway.port)
    client.send(data + b".\r\n")
    assert client.reply().startswith("250")
    client.close()
    got = sink.wait_for(1)[0]
    assert got.data.endswith(body)
    assert "BODY=8BITMIME" in got.mail_options  # we declare it to the next hop


def test_smtputf8_addresses(gateway, sink):
    client = RawSmtp(gateway.port)
    client.reply()
    assert "SMTPUTF8" in client.cmd("EHLO client.test")
    client.send("MAIL FROM:<josé@sender.test> SMTPUTF8\r\n".encode())
    assert client.reply().startswith("250")
    client.send("RCPT TO:<müller@example.test>\r\n".encode())
    assert client.reply().startswith("250")
    client.cmd("DATA")
    client.send(message(to="müller@example.test") + b".\r\n")
    assert client.reply().startswith("250")
    client.close()
    got = sink.wait_for(1)[0]
    assert got.rcpts == ("müller@example.test",)
    assert got.mail_from == "josé@sender.test"


def test_pipelining(gateway, sink):
    client = RawSmtp(gateway.port)
    client.reply()
    assert "PIPELINING" in client.cmd("EHLO client.test")
    client.send(
        b"MAIL FROM:<a@sender.test>\r\nRCPT TO:<bob@example.test>\r\n"
        b"RCPT TO:<nobody@elsewhere.test>\r\nDATA\r\n"
    )
    replies = [client.reply() for _ in range(4)]
    assert [r[:3] for r in replies] == ["250", "250", "550", "354"]
    client.send(message() + b".\r\n")
    assert client.reply().startswith("250")
    client.close()
    assert sink.wait_for(1)[0].rcpts == ("bob@example.test",)


def test_pipelined_commands_are_answered_in_one_send(gateway, sink):
    client = RawSmtp(gateway.port)
    client.reply()
    client.send(
        b"EHLO client.test\r\nMAIL FROM:<a@sender.test>\r\n"
        b"RCPT TO:<bob@example.test>\r\nRSET\r\nMAIL FROM:<a@sender.test>\r\n"
        b"RCPT TO:<bob@example.test>\r\nDATA\r\n"
    )
    first = client.sock.recv(65536).decode()  # every reply, up to the 354, in one segment
    codes = [line[:3] for line in first.splitlines()]
    assert codes[-5:] == ["250", "250", "250", "250", "354"]
    assert "PIPELINING" in first
    client.send(message() + b".\r\n")
    assert client.reply().startswith("250")
    client.close()
    assert sink.wait_for(1)[0].rcpts == ("bob@example.test",)


@pytest.mark.parametrize("failing", ["ledger", "spool"])
def test_storage_failure_answers_451_and_leaves_nothing(gateway, sink, monkeypatch, failing):
    def broken(*args, **kwargs):
        raise OSError(f"{failing} unavailable")

    if failing == "ledger":
        monkeypatch.setattr(ledger, "record_many", broken)
    else:
        monkeypatch.setattr(gateway.gateway.intake.spool, "write", broken)
    client = open_data(gateway.port)
    client.send(message() + b".\r\n")
    assert client.reply().startswith("451 4.3.0")
    client.close()
    queue = gateway.settings.spool.path / "queue"
    assert list(queue.iterdir()) == []
    assert ledger_rows(gateway, ledger.messages) == []
    time.sleep(0.3)
    assert sink.messages == []


def test_stalled_client_is_timed_out_and_nothing_leaks(make_gateway):
    gw = make_gateway(smtp={"timeout": 0.5})
    client = open_data(gw.port)
    client.send(b"Subject: stalled\r\n\r\nthe client stops here")
    assert client.reply().startswith("421 4.4.2")
    with pytest.raises(ConnectionError):
        client.reply()
    client.close()
    deadline = time.monotonic() + 5
    while gw.gateway.smtp.sessions and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not gw.gateway.smtp.sessions
    assert gw.gateway.smtp.limiter.active == 0
    assert gw.gateway.spool.list_jobs() == []


def test_disconnect_mid_data_spools_and_delivers_nothing(gateway, sink):
    client = open_data(gateway.port)
    client.send(b"Subject: cut\r\n\r\nhalf a message")
    client.sock.shutdown(socket.SHUT_RDWR)
    client.close()
    time.sleep(0.5)
    assert gateway.gateway.spool.list_jobs() == []
    assert ledger_rows(gateway, ledger.messages) == []
    assert sink.messages == []


def test_sessions_limited_per_ip_with_421(make_gateway):
    gw = make_gateway(smtp={"max_sessions_per_ip": 2})
    first, second = RawSmtp(gw.port), RawSmtp(gw.port)
    assert first.reply().startswith("220")
    assert second.reply().startswith("220")
    third = RawSmtp(gw.port)
    assert third.reply().startswith("421 4.7.0")
    third.close()
    first.cmd("QUIT")
    first.close()
    time.sleep(0.2)
    fourth = RawSmtp(gw.port)
    assert fourth.reply().startswith("220")
    for c in (second, fourth):
        c.close()


def test_null_sender_is_accepted(gateway, sink):
    code, _ = send(gateway.port, ["bob@example.test"], message(), sender="")
    assert code == 250
    assert sink.wait_for(1)[0].mail_from == ""


def test_role_accounts_reachable_and_case_of_domain_ignored(gateway, sink):
    code, _ = send(gateway.port, ["Postmaster@EXAMPLE.TEST"], message())
    assert code == 250
    assert sink.wait_for(1)[0].rcpts == ("Postmaster@EXAMPLE.TEST",)


def test_client_reverse_dns_name_appears_in_received_and_ledger(gateway, sink, dns_server):
    dns_server.zone.add("2.0.0.127.in-addr.arpa", "PTR", "client.sender.test")
    with smtplib.SMTP("127.0.0.1", gateway.port, source_address=("127.0.0.2", 0)) as client:
        client.sendmail("alice@sender.test", ["bob@example.test"], message())
    received = sink.wait_for(1)[0].data.split(b"\r\n\r\n")[0].replace(b"\r\n\t", b" ")
    assert b"(client.sender.test [127.0.0.2])" in received
    row = ledger_rows(gateway, ledger.messages)[0]
    assert row["client_hostname"] == "client.sender.test"


def _raw_transaction(port: int, payload: bytes, tail: bytes = b"") -> tuple[str, RawSmtp]:
    client = open_data(port)
    client.send(payload + tail)
    return client.reply(), client


@pytest.mark.parametrize(
    ("wire", "delivered_body"),
    [
        (b"Subject: dots\r\n\r\n..leading dot\r\n...two\r\n.\r\n", b".leading dot\r\n..two\r\n"),
        (b"Subject: x\r\n\r\na\r\n.\r\n", b"a\r\n"),
        (b"Subject: x\r\n\r\n\r\n.\r\n", b"\r\n"),
        (b"Subject: x\r\n\r\nnot.\r\nthe end\r\n.\r\n", b"not.\r\nthe end\r\n"),
    ],
)
def test_data_is_read_to_crlf_dot_crlf_and_unstuffed(gateway, sink, wire, delivered_body):
    reply, client = _raw_transaction(gateway.port, wire)
    assert reply.startswith("250"), reply
    client.close()
    assert sink.wait_for(1)[0].data.split(b"\r\n\r\n", 1)[1] == delivered_body


def test_empty_message_and_pipelined_quit_after_the_dot(gateway, sink):
    reply, client = _raw_transaction(gateway.port, b".\r\n", tail=b"QUIT\r\n")
    assert reply.startswith("250"), reply
    assert client.reply().startswith("221")
    client.close()
    assert sink.wait_for(1)[0].rcpts == ("bob@example.test",)


def test_smuggled_end_of_data_with_bare_lf_stays_inside_the_message(gateway, sink):
    """SMTP smuggling: <LF>.<LF> and <LF>.<CR><LF> are data, not the end of DATA."""
    wire = (
        b"Subject: outer\r\n\r\nhello\n.\nMAIL FROM:<evil@x.test>\r\n"
        b"hello\n.\r\nRCPT TO:<victim@example.test>\r\n.\r\n"
    )
    reply, client = _raw_transaction(gateway.port, wire)
    assert reply.startswith("250")
    client.close()
    got = sink.wait_for(1)
    time.sleep(0.3)
    assert len(sink.messages) == 1 and got[0].rcpts == ("bob@example.test",)
    assert b"MAIL FROM:<evil@x.test>" in got[0].data


def test_slow_upload_is_not_cut_off_while_data_keeps_coming(make_gateway, sink):
    gw = make_gateway(smtp={"timeout": 1.0})
    client = open_data(gw.port)
    client.send(b"Subject: slow\r\n\r\n")
    for i in range(8):  # 2.4 seconds in all, over twice the idle timeout; gaps well under it
        client.send(f"line {i}\r\n".encode())
        time.sleep(0.3)
    client.send(b".\r\n")
    assert client.reply().startswith("250")
    client.close()
    assert b"line 7" in sink.wait_for(1)[0].data
