"""Sender authentication end to end: `mailwarden scan --json`, and real SMTP through
the gateway to the sink, with the loopback DNS server as the world's DNS."""

from __future__ import annotations

import email
import email.policy
import json
import smtplib
import subprocess
import sys
import time

import pytest
from sqlalchemy import select

from filters.auth import claims_authserv_id
from gateway.store import ledger
from tests.support.authrun import AuthHarness
from tests.support.gateway import REPO, write_config
from tests.support.mailauth import context, ed25519_key, message, publish, rsa_key, sign

AUTHSERV = "mx.example.test"  # smtp.hostname in tests/support/gateway.py


@pytest.fixture
def world(dns_server):
    """sender.test signs and publishes SPF/DMARC; bank.test rejects what it did not send."""
    zone = dns_server.zone
    zone.add("sender.test", "TXT", "v=spf1 ip4:127.0.0.1 ip4:192.0.2.10 -all")
    zone.add("_dmarc.sender.test", "TXT", "v=DMARC1; p=reject")
    publish(zone, "ed1", "sender.test", ed25519_key())
    publish(zone, "rsa1", "sender.test", rsa_key())
    zone.add("bank.test", "TXT", "v=spf1 ip4:198.51.100.0/24 -all")
    zone.add("_dmarc.bank.test", "TXT", "v=DMARC1; p=reject")
    return dns_server


def _dns(server) -> dict:
    return {"nameservers": [server.nameserver], "timeout": 1.0, "budget": 3.0}


def _unfold(value) -> str:
    """A header value as a reader sees it: folding whitespace is one space."""
    return " ".join(str(value).split())


def _signed(from_header: str = "Alice <alice@sender.test>", extra: str = "") -> bytes:
    raw = message(from_header=from_header, extra=extra)
    raw = sign(raw, "rsa1", "sender.test", rsa_key())
    return sign(raw, "ed1", "sender.test", ed25519_key())


def test_scan_json_shows_auth_symbols(tmp_path, world):
    config = write_config(tmp_path, "127.0.0.1:9", {"dns": _dns(world)})
    eml, out = tmp_path / "in.eml", tmp_path / "out.eml"
    eml.write_bytes(_signed())
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "scan", str(eml), "--config", str(config),
         "--json", "--rcpt", "bob@example.test", "--mail-from", "alice@sender.test",
         "--client-ip", "192.0.2.10", "--helo", "mail.sender.test", "--out", str(out)],
        capture_output=True, text=True, cwd=REPO, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    symbols = {s["name"]: s for s in json.loads(result.stdout)["symbols"]}
    assert symbols["SPF_PASS"]["options"] == ["sender.test"]
    assert symbols["SPF_PASS"]["score"] == -0.2  # the default weight from rules/symbols
    assert symbols["DKIM_PASS"]["options"] == ["sender.test"]
    assert symbols["DMARC_PASS"]["options"] == ["sender.test"]
    assert "SPF_HELO_NONE" in symbols
    copy = email.message_from_bytes(out.read_bytes(), policy=email.policy.default)
    (ar,) = [_unfold(v) for v in copy.get_all("Authentication-Results")]
    assert ar.startswith(f"{AUTHSERV}; spf=pass smtp.mailfrom=alice@sender.test;")
    assert "dkim=pass header.d=sender.test header.s=rsa1" in ar
    assert "dmarc=pass (p=reject dis=none) header.from=sender.test" in ar


def _send(port: int, data: bytes, sender: str, rcpts=("bob@example.test",)):
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo("mail.sender.test")
        client.mail(sender)
        for rcpt in rcpts:
            code, text = client.rcpt(rcpt)
            assert code == 250, text
        return client.data(data)


def test_delivered_mail_carries_our_header_and_forged_ones_are_gone(make_gateway, sink, world):
    gw = make_gateway(dns=_dns(world))
    forged = (
        "Authentication-Results: MX.Example.TEST (we checked);\r\n"
        "\tdkim=pass header.d=bank.test; dmarc=pass header.from=bank.test\r\n"
        "Authentication-Results: mx.example.test 1; spf=pass smtp.mailfrom=bank.test\r\n"
        "Authentication-Results: relay.sender.test; spf=pass smtp.mailfrom=sender.test\r\n"
    )
    code, _ = _send(gw.port, _signed(extra=forged), "alice@sender.test")
    assert code == 250
    got = sink.wait_for(1)[0]
    delivered = email.message_from_bytes(got.data, policy=email.policy.default)
    results = [_unfold(v) for v in delivered.get_all("Authentication-Results")]
    ours = [v for v in results if claims_authserv_id(v, AUTHSERV)]
    assert len(ours) == 1, results
    assert ours[0].startswith(f"{AUTHSERV}; spf=pass smtp.mailfrom=alice@sender.test;")
    assert "dkim=pass header.d=sender.test header.s=rsa1 header.a=rsa-sha256" in ours[0]
    assert "dkim=pass header.d=sender.test header.s=ed1 header.a=ed25519-sha256" in ours[0]
    assert "dmarc=pass (p=reject dis=none) header.from=sender.test" in ours[0]
    assert "bank.test" not in " ".join(ours)
    # someone else's result is not ours to remove
    assert any(v.startswith("relay.sender.test;") for v in results)
    # our additions on top leave the signatures intact for the mail server behind us
    recheck = AuthHarness(world.nameserver).run(context(got.data, mail_from="alice@sender.test"))
    assert [d.result for d in recheck.evidence.dkim] == ["pass", "pass"]


def test_dmarc_reject_is_refused_at_data(make_gateway, sink, world):
    gw = make_gateway(dns=_dns(world))
    forged = message(from_header="Bank <security@bank.test>")
    code, text = _send(gw.port, forged, "security@bank.test")
    assert code == 550
    assert text.decode().startswith("5.7.1 ")
    assert "DMARC policy of bank.test" in text.decode()
    # a message that passes goes through on the same gateway
    assert _send(gw.port, _signed(), "alice@sender.test")[0] == 250
    assert len(sink.wait_for(1)) == 1


def test_dmarc_mode_quarantine_holds_instead_of_rejecting(make_gateway, sink, world):
    gw = make_gateway(dns=_dns(world), policy={"dmarc": "quarantine"})
    code, text = _send(gw.port, message(from_header="security@bank.test"), "security@bank.test")
    assert code == 250
    queue_id = text.decode().rsplit(" ", 1)[1]
    deadline = time.monotonic() + 10
    rows: list = []
    while time.monotonic() < deadline and not rows:
        with gw.gateway.db.engine.connect() as conn:
            rows = conn.execute(
                select(ledger.recipients).where(ledger.recipients.c.message_id == queue_id)
            ).all()
        time.sleep(0.05)
    assert [r.action for r in rows] == ["quarantine"]
    with gw.gateway.db.engine.connect() as conn:
        msg = conn.execute(select(ledger.messages).where(ledger.messages.c.id == queue_id)).one()
    facts = msg.filters["auth"]["facts"]
    assert (facts["dmarc"], facts["dmarc_policy"], facts["dmarc_disposition"]) == (
        "fail",
        "reject",
        "quarantine",
    )
    assert sink.messages == []


def test_slow_dns_never_holds_the_session_past_the_budget(make_gateway, sink, world):
    zone = world.zone
    for name in ("sender.test", "_dmarc.sender.test", "rsa1._domainkey.sender.test",
                 "ed1._domainkey.sender.test", "mail.sender.test"):  # fmt: skip
        zone.slow(name, 5.0)
    gw = make_gateway(dns={"nameservers": [world.nameserver], "timeout": 2.0, "budget": 1.0})
    started = time.monotonic()
    code, _ = _send(gw.port, _signed(), "alice@sender.test")
    elapsed = time.monotonic() - started
    assert code == 250
    assert elapsed < 1.0 + 0.5 + 1.0  # budget + grace + SMTP and the rest of the pipeline
    delivered = email.message_from_bytes(sink.wait_for(1)[0].data, policy=email.policy.default)
    ours = _unfold(delivered["Authentication-Results"])
    assert "spf=temperror" in ours and "dkim=temperror" in ours and "dmarc=temperror" in ours


def test_a_second_from_domain_does_not_escape_dmarc(tmp_path, dns_server):
    """A forger adding an address in another domain gets tagged as spam, not delivered clean."""
    dns_server.zone.add("_dmarc.bank.test", "TXT", "v=DMARC1; p=reject")
    eml = tmp_path / "forged.eml"
    eml.write_bytes(
        b"From: ceo@bank.test, friend@other.test\r\nTo: bob@example.test\r\n"
        b"Subject: wire money\r\nDate: Sun, 22 Nov 2026 10:00:00 +0000\r\n"
        b"Message-ID: <f@x>\r\n\r\npay now\r\n"
    )
    dns = {"dns": {"nameservers": [dns_server.nameserver]}}
    config = write_config(tmp_path, "127.0.0.1:2626", dns)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "scan",
            str(eml),
            "--config",
            str(config),
            "--mail-from",
            "ceo@bank.test",
            "--rcpt",
            "bob@example.test",
            "--json",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    verdict = json.loads(out.stdout)
    names = {s["name"] for s in verdict["symbols"]}
    assert {"FROM_MULTIPLE_DOMAINS", "DMARC_PERMERROR"} <= names
    assert verdict["action"]["bob@example.test"] in ("tag", "quarantine", "reject")
