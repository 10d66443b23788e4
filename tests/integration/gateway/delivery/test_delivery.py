"""Delivery to the next hop: retries, bounces (RFC 3464 DSNs), next hop down."""

from __future__ import annotations

import email
import email.policy
import json
import smtplib
import subprocess
import sys
import time

from sqlalchemy import select

from gateway.store import ledger
from tests.support.mail import message
from tests.support.smtp_sink import SmtpSink
from tests.support.wait import wait_until


def send(port: int, rcpts: list[str], data: bytes, sender: str = "alice@example.test"):
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as client:
        refused = client.sendmail(sender, rcpts, data)
        assert refused == {}


def recipient_status(gw, rcpt: str) -> dict:
    with gw.gateway.db.engine.connect() as conn:
        row = conn.execute(
            select(ledger.recipients).where(ledger.recipients.c.rcpt == rcpt)
        ).first()
    return dict(row._mapping) if row else {}


def queue_json(gw) -> list[dict]:
    out = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "queue", "--config", str(gw.config), "--json"],
        capture_output=True,
        check=True,
    )
    return json.loads(out.stdout)


def test_next_hop_down_mail_waits_and_is_delivered_when_it_returns(make_gateway, sink):
    sink.stop()
    gw = make_gateway()
    send(gw.port, ["bob@example.test"], message(subject="patience"))
    jobs = wait_until(lambda: [j for j in queue_json(gw) if j["attempts"] >= 1])
    assert jobs[0]["pending"] == ["bob@example.test"]
    assert "Connect" in jobs[0]["last_error"] or "refused" in jobs[0]["last_error"]
    assert recipient_status(gw, "bob@example.test")["status"] == "pending"
    sink.start()
    got = sink.wait_for(1)
    assert b"Subject: patience" in got[0].data
    wait_until(lambda: queue_json(gw) == [])
    assert recipient_status(gw, "bob@example.test")["status"] == "delivered"


def test_temporary_refusal_is_retried(gateway, sink):
    sink.rcpt_replies["bob@example.test"] = "451 4.2.0 try later"
    send(gateway.port, ["bob@example.test", "carol@example.test"], message())
    first = sink.wait_for(1)
    assert first[0].rcpts == ("carol@example.test",)
    wait_until(lambda: recipient_status(gateway, "bob@example.test").get("attempts", 0) >= 1)
    assert "451 4.2.0" in recipient_status(gateway, "bob@example.test")["last_error"]
    del sink.rcpt_replies["bob@example.test"]
    got = sink.wait_for(2)
    assert got[1].rcpts == ("bob@example.test",)
    assert sink.for_rcpt("carol@example.test") == [first[0]]  # carol got it once


def parse_dsn(data: bytes):
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == [
        "text/plain",
        "message/delivery-status",
        "text/rfc822-headers",
    ]
    return msg, parts


def test_permanent_refusal_bounces_with_rfc3464_dsn(gateway, sink):
    sink.rcpt_replies["ghost@example.test"] = "550 5.1.1 no such user"
    original = message(subject="to a ghost", sender="alice@example.test")
    send(gateway.port, ["ghost@example.test"], original, sender="alice@example.test")
    dsn = sink.wait_for(1)[0]
    assert dsn.mail_from == ""
    assert dsn.rcpts == ("alice@example.test",)
    _, parts = parse_dsn(dsn.data)
    status = parts[1].as_string()
    assert "Final-Recipient: rfc822; ghost@example.test" in status
    assert "Action: failed" in status
    assert "Status: 5.1.1" in status
    assert "Diagnostic-Code: smtp; 550 5.1.1 no such user" in status
    assert "Subject: to a ghost" in parts[2].as_string()
    wait_until(lambda: recipient_status(gateway, "ghost@example.test")["status"] == "bounced")


def test_bounce_of_null_sender_mail_is_never_sent(gateway, sink):
    sink.rcpt_replies["ghost@example.test"] = "550 5.1.1 no such user"
    send(gateway.port, ["ghost@example.test", "bob@example.test"], message(), sender="")
    sink.wait_for(1)
    wait_until(lambda: recipient_status(gateway, "ghost@example.test")["status"] == "bounced")
    time.sleep(0.5)
    assert len(sink.messages) == 1  # only bob's copy, no DSN
    assert sink.messages[0].rcpts == ("bob@example.test",)


def test_retry_window_expiry_bounces_with_4_4_7(make_gateway, sink):
    bounce_sink = SmtpSink().start()
    try:
        sink.rcpt_replies["slow@example.test"] = "452 4.2.2 mailbox full"
        gw = make_gateway(delivery={"retry_window": 1.0, "bounce_relay": bounce_sink.address})
        send(gw.port, ["slow@example.test"], message(), sender="alice@remote.test")
        dsn = bounce_sink.wait_for(1)[0]
        assert dsn.rcpts == ("alice@remote.test",)
        _, parts = parse_dsn(dsn.data)
        assert "Status: 4.4.7" in parts[1].as_string()
        assert "mailbox full" in parts[1].as_string()
        assert sink.messages == []
    finally:
        bounce_sink.stop()


def test_data_refused_permanently_bounces_every_accepted_recipient(gateway, sink):
    sink.data_replies["alice@example.test"] = "554 5.6.0 content refused"
    send(gateway.port, ["bob@example.test", "carol@example.test"], message())
    wait_until(lambda: recipient_status(gateway, "carol@example.test")["status"] == "bounced")
    dsn = sink.wait_for(1)[0]
    _, parts = parse_dsn(dsn.data)
    status = parts[1].as_string()
    assert "bob@example.test" in status and "carol@example.test" in status
    assert "Status: 5.6.0" in status


def test_delivered_jobs_leave_the_spool_with_the_next_write_or_after_a_wait(
    gateway, sink, monkeypatch
):
    from gateway.delivery import outbound

    queue = gateway.settings.spool.path / "queue"
    monkeypatch.setattr(outbound, "REMOVAL_WAIT", 3.0)
    send(gateway.port, ["bob@example.test"], message(subject="first"))
    sink.wait_for(1)
    wait_until(lambda: recipient_status(gateway, "bob@example.test").get("status") == "delivered")
    first = sorted(p.name for p in queue.iterdir())
    assert len(first) == 1  # delivered (one .job file), still there: no thread hop of its own
    started = time.monotonic()
    send(gateway.port, ["carol@example.test"], message(subject="second"))
    # the second message's spool write takes the first job away, long before the wait
    wait_until(lambda: not set(first) & {p.name for p in queue.iterdir()}, timeout=2.0)
    assert time.monotonic() - started < 2.0
    sink.wait_for(2)
    wait_until(lambda: list(queue.iterdir()) == [], timeout=10)  # the last one: after the wait
