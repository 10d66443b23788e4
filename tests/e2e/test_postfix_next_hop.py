"""Debian's Postfix as the protected mail server behind the gateway, read from its Maildir.

Mail the gateway refuses never reaches Postfix; mail it cleans arrives clean; when
Postfix answers 4xx the gateway keeps the mail and delivers it once Postfix accepts.
"""

from __future__ import annotations

import smtplib
import time

import pytest
from sqlalchemy import select

from gateway.store import ledger
from tests.integration.gateway.smtp.test_rules_smtp import exe_message
from tests.support.gateway import InProcessGateway, write_config
from tests.support.mail import message
from tests.support.postfix import PostfixServer
from tests.support.virusmail import EICAR, Payload, Shapes
from tests.unit.filters.rules.test_rules_lang import EXAMPLE

pytestmark = pytest.mark.slow

EICAR_NAME = "Mailwarden.Test.EICAR.UNOFFICIAL"


@pytest.fixture
def protected(tmp_path, postfix: PostfixServer, clamd, dns_server):
    """The gateway in front of Postfix: example.test's rules, antivirus in clean mode."""
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "example.test.yaml").write_text(EXAMPLE)
    directory = tmp_path / "gw"
    directory.mkdir()
    config = write_config(
        directory,
        postfix.address,
        {
            "dns": {"nameservers": [dns_server.nameserver], "timeout": 1.0},
            "rules": {"dir": str(rules)},
            "clamav": {"socket": str(clamd.socket), "timeout": 10.0},
        },
    )
    with InProcessGateway(config) as gw:
        yield gw


def send(port: int, rcpt: str, data: bytes, sender: str = "alice@sender.test"):
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo("client.sender.test")
        client.mail(sender)
        code, text = client.rcpt(rcpt)
        assert code == 250, text
        try:
            return client.data(data)
        except smtplib.SMTPDataError as exc:
            return exc.smtp_code, exc.smtp_error


def test_refused_mail_never_reaches_postfix_and_accepted_mail_lands_in_the_maildir(
    protected, postfix
):
    code, reply = send(protected.port, "bob@example.test", exe_message())
    assert (code, reply) == (550, b"5.7.1 executables are not accepted here")

    code, _ = send(protected.port, "bob@example.test", message(subject="quarterly figures"))
    assert code == 250
    [delivered] = postfix.wait_delivered("bob@example.test")
    assert delivered["Subject"] == "quarterly figures"
    assert delivered["Delivered-To"] == "bob@example.test"
    assert "mx.example.test" in " ".join(delivered.get_all("Received"))  # came through us
    time.sleep(1.0)  # a refused mail would have had time to arrive too
    assert [m["Subject"] for m in postfix.delivered("bob@example.test")] == ["quarterly figures"]
    assert "invoice" not in postfix.log_text()


def test_infected_mail_arrives_cleaned(protected, postfix):
    infected = Shapes(Payload("notes.txt", b"meeting at ten\r\n")).base64(
        EICAR, "invoice.doc", "pf1"
    )
    code, _ = send(protected.port, "alice@example.test", infected.encode())
    assert code == 250
    [delivered] = postfix.wait_delivered("alice@example.test")
    raw = delivered.as_bytes()
    assert EICAR not in raw
    assert delivered["X-Virus-Status"] == f"Cleaned ({EICAR_NAME})"
    parts = {part.get_filename(): part for part in delivered.walk() if not part.is_multipart()}
    assert "invoice.doc" not in parts  # the infected attachment is gone
    assert parts["notes.txt"].get_payload(decode=True) == b"meeting at ten\r\n"  # kept as is
    notices = [p.get_content() for p in parts.values() if p.get_content_type() == "text/plain"]
    assert any(EICAR_NAME in text and "invoice.doc" in text for text in notices)


def test_postfix_answering_4xx_is_retried_until_it_accepts(protected, postfix):
    postfix.defer("451 4.3.0 mail server busy, try again later")
    code, reply = send(protected.port, "carol@other.test", message(subject="while busy"))
    assert code == 250
    queue_id = reply.decode().rsplit(" ", 1)[1]

    def recipient() -> dict:
        with protected.gateway.db.engine.connect() as conn:
            row = conn.execute(
                select(ledger.recipients).where(ledger.recipients.c.message_id == queue_id)
            ).one()
        return dict(row._mapping)

    deadline = time.monotonic() + 30
    while recipient()["attempts"] < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    row = recipient()
    assert row["attempts"] >= 2 and row["status"] != "delivered"
    assert "451 4.3.0" in row["last_error"]
    assert postfix.delivered("carol@other.test") == []

    postfix.accept()
    [delivered] = postfix.wait_delivered("carol@other.test")
    assert delivered["Subject"] == "while busy"
    deadline = time.monotonic() + 30
    while recipient()["status"] != "delivered" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert recipient()["status"] == "delivered"
