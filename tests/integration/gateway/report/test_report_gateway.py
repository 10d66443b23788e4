"""Through the real gateway on loopback (real clamd, the sink as next hop): mail, a
user's report to spam-report@, and the month's `report --format json` shows it all."""

from __future__ import annotations

import json
import smtplib
import time
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path

import pytest
from sqlalchemy import select

from gateway.cli import main as cli
from gateway.store import availability, ledger, reports
from tests.support.virusmail import EICAR, Payload, Shapes
from tests.support.wait import wait_until

pytestmark = pytest.mark.slow


def send(port: int, sender: str, rcpts: list[str], data: bytes) -> tuple[int, bytes]:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo("client.sender.test")
        client.mail(sender)
        for rcpt in rcpts:
            code, text = client.rcpt(rcpt)
            assert code == 250, text
        try:
            return client.data(data)
        except smtplib.SMTPDataError as exc:
            return exc.smtp_code, exc.smtp_error


def mail(subject: str, dated: bool = True, ident: str = "") -> bytes:
    date = f"Date: {formatdate()}\r\n" if dated else ""
    return (
        f"From: alice@sender.test\r\nTo: bob@example.test\r\nSubject: {subject}\r\n{date}"
        f"Message-ID: <{ident or subject}@sender.test>\r\n\r\nhello\r\n"
    ).encode()


def forward_as_attachment(original: bytes, reporter: str) -> bytes:
    import email
    import email.policy

    report = EmailMessage()
    report["From"] = reporter
    report["To"] = "spam-report@example.test"
    report["Subject"] = "Fwd: spam"
    report["Message-ID"] = f"<report-{time.time_ns()}@example.test>"
    report["Date"] = formatdate()
    report.set_content("this got through")
    report.add_attachment(email.message_from_bytes(original, policy=email.policy.default))
    return report.as_bytes()


def _wait(predicate, timeout: float = 30.0):
    return wait_until(predicate, timeout, 0.05)


def test_mail_and_a_users_report_appear_in_the_monthly_report(make_gateway, sink, clamd):
    gw = make_gateway(
        clamav={"socket": str(clamd.socket), "timeout": 20.0},
        policy={"symbols": {"HEADER_MISSING_DATE": 12.0}},  # undated mail is held as spam
        report={"spam_address": "spam-report", "heartbeat_interval": 0.2},
    )
    port = gw.port
    for n in range(3):
        assert send(port, "alice@sender.test", ["bob@example.test"], mail(f"clean{n}"))[0] == 250
    assert send(port, "alice@sender.test", ["bob@example.test"], mail("spam", False))[0] == 250
    virus = Shapes(Payload("notes.txt", b"meeting\r\n")).base64(EICAR, "invoice.doc", "v1")
    assert send(port, "alice@sender.test", ["bob@example.test"], virus.encode())[0] == 250
    delivered = sink.wait_for(4)
    assert len(delivered) == 4  # three clean, one cleaned of its virus; the spam is held
    missed = next(m for m in delivered if b"Subject: clean1" in m.data)

    # bob reports one delivered mail as spam; carol (not a recipient) tries too;
    # a report about nothing we know
    code, reply = send(
        port,
        "bob@example.test",
        ["spam-report@example.test"],
        forward_as_attachment(missed.data, "bob@example.test"),
    )
    assert code == 250 and b"report recorded" in reply
    assert (
        send(
            port,
            "carol@example.test",
            ["spam-report@example.test"],
            forward_as_attachment(missed.data, "carol@example.test"),
        )[0]
        == 250
    )
    assert send(port, "bob@example.test", ["spam-report@example.test"], mail("nothing"))[0] == 250
    time.sleep(0.5)
    assert len(sink.messages) == 4  # reports are recorded, never delivered

    engine = gw.gateway.db.engine

    def settled():
        with engine.connect() as conn:
            statuses = list(conn.scalars(select(ledger.recipients.c.status)))
            beats = conn.execute(select(availability.heartbeats.c.id)).first()
        return sorted(statuses) == ["delivered"] * 4 + ["quarantined"] and beats

    assert _wait(settled)
    with engine.connect() as conn:
        rows = conn.execute(select(reports.report_mails).order_by(reports.report_mails.c.id)).all()
    assert [r.status for r in rows] == ["matched", "not_recipient", "unmatched"]

    month = datetime.now(UTC).strftime("%Y-%m")
    config = Path(gw.settings.spool.path).parent / "mailwarden.toml"
    out = Path(gw.settings.spool.path).parent / "report.json"
    assert (
        cli(["report", "-c", str(config), "--month", month, "--format", "json", "--out", str(out)])
        == 0
    )
    report = json.loads(out.read_text())
    domain = report["domains"]["example.test"]
    spam = domain["spam_filter_rate"]
    assert (spam["numerator"], spam["denominator"]) == (1, 2)  # held one, missed the reported one
    virus_rate = domain["virus_detection_rate"]
    assert (virus_rate["numerator"], virus_rate["denominator"]) == (1, 1)
    assert (domain["virus_clean_rate"]["numerator"], domain["virus_clean_rate"]["denominator"]) == (
        1,
        1,
    )
    assert domain["delay_avg_s"]["denominator"] == 4 and domain["delay_avg_s"]["value"] < 60
    assert domain["counts"]["unmatched_reports"] == 2 and domain["feedback"]["spam"] == 1
    assert domain["counts"]["recipients"] == 5  # the reports themselves are not mail
    assert report["availability"]["measured_minutes"] >= 1
    assert report["availability"]["up_minutes"] >= 1
    assert report["signatures"]["versions_in_use"][0].startswith("ClamAV ")
    for metric in ("spam_filter_rate", "virus_detection_rate", "false_positive_rate"):
        assert domain[metric]["status"] == "not enough data"  # five mails prove nothing
