"""STARTTLS, and the operator's commands: config errors, scan, queue, quarantine."""

from __future__ import annotations

import json
import smtplib
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from gateway.app import housekeeping
from gateway.store import ledger, quarantine
from tests.support import tls
from tests.support.gateway import REPO, write_config
from tests.support.mail import RawSmtp, message


def mailwarden(*args: str, check: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=check,
    )


@pytest.fixture
def certificate(tmp_path):
    return tls.issue(tmp_path)


def test_starttls_when_a_certificate_is_configured(make_gateway, sink, certificate):
    cert, key, client_context = certificate
    gw = make_gateway(smtp={"tls_cert": str(cert), "tls_key": str(key), "require_tls": True})
    with smtplib.SMTP("127.0.0.1", gw.port, timeout=10) as client:
        client.ehlo("client.test")
        assert client.has_extn("starttls")
        assert client.mail("a@sender.test")[0] == 530  # TLS required first
        client.starttls(context=client_context)
        client.ehlo("client.test")
        client.sendmail("a@sender.test", ["bob@example.test"], message(subject="secret"))
    got = sink.wait_for(1)[0].data
    assert b"with ESMTPS id" in got.split(b"\r\n\r\n")[0].replace(b"\r\n\t", b" ")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("[smtp]\nlisten = '127.0.0.1:2525'\n", "domains.accept: required key is missing"),
        ("this is not toml", "not valid TOML"),
        (
            "[smtp]\nmax_message_size = 'big'\n[domains]\naccept=['a.test']\n"
            "[delivery]\nnext_hop='127.0.0.1:25'\n[spool]\npath='/tmp/x'\n[store]\nurl='sqlite://'\n",
            "smtp.max_message_size:",
        ),
        (
            "[smtp]\nlisten = 'nonsense'\n[domains]\naccept=['a.test']\n"
            "[delivery]\nnext_hop='127.0.0.1:25'\n[spool]\npath='/tmp/x'\n[store]\nurl='sqlite://'\n",
            'smtp.listen: expected "host:port"',
        ),
        (
            "[smtp]\nlisten_port = 25\n[domains]\naccept=['a.test']\n"
            "[delivery]\nnext_hop='127.0.0.1:25'\n[spool]\npath='/tmp/x'\n[store]\nurl='sqlite://'\n",
            "smtp.listen_port: unknown key",
        ),
    ],
)
def test_bad_config_is_a_line_per_problem_naming_file_and_key_exit_2(tmp_path, content, expected):
    path = tmp_path / "bad.toml"
    path.write_text(content)
    result = mailwarden("serve", "--config", str(path))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()  # one line per problem, all at once
    assert all(str(path) in line for line in lines), result.stderr
    assert any(expected in line for line in lines), result.stderr


def test_missing_config_file(tmp_path):
    result = mailwarden("serve", "--config", str(tmp_path / "absent.toml"))
    assert result.returncode == 2
    assert "config file not found" in result.stderr


def test_scan_prints_the_verdict_as_json_and_writes_the_copy(tmp_path):
    eml = tmp_path / "in.eml"
    eml.write_bytes(b"To: bob@example.test\r\nSubject: no sender\r\n\r\nbody\r\n")
    out = tmp_path / "out.eml"
    # header checks alone: the classifier's own scan test is in test_classifier_gateway.py
    config = write_config(tmp_path, "127.0.0.1:2626", {"classifier": {"enabled": False}})
    result = mailwarden(
        "scan",
        str(eml),
        "--config",
        str(config),
        "--rcpt",
        "bob@example.test",
        "--rcpt",
        "abuse@example.test",
        "--mail-from",
        "x@sender.test",
        "--client-ip",
        "192.0.2.7",
        "--helo",
        "h.test",
        "--json",
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    verdict = json.loads(result.stdout)
    assert verdict["action"] == {"bob@example.test": "accept", "abuse@example.test": "accept"}
    names = {s["name"]: s for s in verdict["symbols"]}
    assert names["HEADER_MISSING_FROM"]["score"] == 2.0
    assert "HEADER_MISSING_DATE" in names
    assert verdict["score"] == pytest.approx(sum(s["score"] for s in verdict["symbols"]))
    assert verdict["timings_ms"]["total"] >= 0 and "message" in verdict["timings_ms"]
    copy = out.read_bytes()
    assert copy.startswith(b"Received: from h.test (unknown [192.0.2.7])")
    assert b"X-Spam-Score: 3.50" in copy
    assert copy.endswith(b"\r\n\r\nbody\r\n")


def test_scan_of_a_missing_file_is_a_clear_error(tmp_path):
    result = mailwarden("scan", str(tmp_path / "nope.eml"), "--json")
    assert result.returncode == 2
    assert "nope.eml" in result.stderr and "Traceback" not in result.stderr


def test_queue_lists_waiting_mail_with_age_and_error(make_gateway, sink):
    sink.stop()
    gw = make_gateway()
    with smtplib.SMTP("127.0.0.1", gw.port) as client:
        client.sendmail("a@sender.test", ["bob@example.test"], message())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        text = mailwarden("queue", "--config", str(gw.config), check=True).stdout
        if "last error" in text:
            break
        time.sleep(0.1)
    assert "1 job(s)" in text and "<a@sender.test> -> bob@example.test" in text
    assert "last error:" in text


def test_quarantine_hold_and_release_records_a_false_positive(make_gateway, sink):
    gw = make_gateway(policy={"symbols": {"HEADER_MISSING_DATE": 11.0}})
    data = b"From: a@sender.test\r\nTo: bob@example.test\r\nSubject: held\r\n\r\nbody\r\n"
    with smtplib.SMTP("127.0.0.1", gw.port) as client:
        client.sendmail("a@sender.test", ["bob@example.test"], data)
    listing = json.loads(mailwarden("quarantine", "list", "-c", str(gw.config), "--json").stdout)
    assert len(listing) == 1
    item = listing[0]
    assert item["kind"] == "spam" and item["rcpts"] == ["bob@example.test"]
    assert item["domain"] == "example.test"
    time.sleep(0.3)
    assert sink.messages == []
    shown = mailwarden("quarantine", "show", "-c", str(gw.config), item["id"]).stdout
    assert "Subject: held" in shown
    result = mailwarden("quarantine", "release", "-c", str(gw.config), item["id"], "--by", "ann")
    assert result.returncode == 0, result.stderr
    got = sink.wait_for(1)[0]
    assert got.data.startswith(b"X-Mailwarden-Released: " + item["id"].encode())
    assert got.data.endswith(data)
    again = mailwarden("quarantine", "release", "-c", str(gw.config), item["id"])
    assert again.returncode == 2 and "not held" in again.stderr
    with gw.gateway.db.engine.connect() as conn:
        fb = [dict(r._mapping) for r in conn.execute(select(ledger.feedback))]
        rcpt = conn.execute(select(ledger.recipients)).first()
    assert [(f["kind"], f["source"], f["actor"]) for f in fb] == [
        ("false_positive", "release", "ann")
    ]
    deadline = time.monotonic() + 5
    while rcpt.status != "released" and time.monotonic() < deadline:
        time.sleep(0.05)
        with gw.gateway.db.engine.connect() as conn:
            rcpt = conn.execute(select(ledger.recipients)).first()
    assert rcpt.status == "released" and rcpt.action == "quarantine"


def test_mixed_verdicts_quarantine_the_rejected_copy_and_deliver_the_rest(make_gateway, sink):
    gw = make_gateway(policy={"symbols": {"HEADER_MISSING_DATE": 16.0}})
    data = b"From: a@sender.test\r\nTo: x\r\nSubject: mixed\r\n\r\nbody\r\n"
    with smtplib.SMTP("127.0.0.1", gw.port) as client:
        refused = client.sendmail("a@sender.test", ["bob@example.test", "abuse@example.test"], data)
    assert refused == {}
    got = sink.wait_for(1)
    assert got[0].rcpts == ("abuse@example.test",)  # role account: tagged, never refused
    assert b"Subject: [SPAM] mixed" in got[0].data
    listing = json.loads(mailwarden("quarantine", "list", "-c", str(gw.config), "--json").stdout)
    assert [(i["kind"], i["rcpts"]) for i in listing] == [("rejected", ["bob@example.test"])]
    assert quarantine.original(gw.gateway.db.engine, listing[0]["id"]) == data


def test_all_recipients_rejecting_gives_550_at_data(make_gateway, sink):
    gw = make_gateway(policy={"symbols": {"HEADER_MISSING_DATE": 16.0}})
    client = RawSmtp(gw.port)
    client.reply()
    client.cmd("EHLO c.test")
    client.cmd("MAIL FROM:<a@sender.test>")
    client.cmd("RCPT TO:<bob@example.test>")
    client.cmd("DATA")
    client.send(b"From: a@sender.test\r\nSubject: spam\r\n\r\nbuy\r\n.\r\n")
    assert client.reply().startswith("550 5.7.1")
    client.close()
    time.sleep(0.3)
    assert sink.messages == []
    with gw.gateway.db.engine.connect() as conn:
        row = conn.execute(select(ledger.messages)).first()
    assert row.outcome == "rejected" and row.smtp_reply.startswith("550 5.7.1")


def test_quarantine_items_past_their_retention_are_purged_and_the_ledger_stays(make_gateway, sink):
    gw = make_gateway(policy={"symbols": {"HEADER_MISSING_DATE": 11.0}})
    for subject in ("old", "new"):
        data = f"From: a@sender.test\r\nTo: bob@example.test\r\nSubject: {subject}\r\n\r\nx\r\n"
        with smtplib.SMTP("127.0.0.1", gw.port) as client:
            client.sendmail("a@sender.test", ["bob@example.test"], data.encode())
    listing = json.loads(mailwarden("quarantine", "list", "-c", str(gw.config), "--json").stdout)
    old, new = sorted(listing, key=lambda i: i["created_at"])
    engine = gw.gateway.db.engine
    with engine.begin() as conn:
        conn.execute(
            update(quarantine.quarantine)
            .where(quarantine.quarantine.c.id == old["id"])
            .values(created_at=datetime.now(UTC) - timedelta(days=31))
        )
    done = housekeeping.sweep(engine, gw.gateway.settings, datetime.now(UTC))
    assert done["quarantine_items"] == 1
    left = json.loads(mailwarden("quarantine", "list", "-c", str(gw.config), "--json").stdout)
    assert [i["id"] for i in left] == [new["id"]]
    with engine.connect() as conn:
        actions = [r.action for r in conn.execute(select(ledger.recipients))]
    assert actions == ["quarantine", "quarantine"]  # the verdicts stay for the report

    kept = mailwarden("quarantine", "purge", "-c", str(gw.config))
    assert kept.returncode == 0 and kept.stdout.startswith("0 item(s) older than 30d")
    hours = mailwarden("quarantine", "purge", "-c", str(gw.config), "--older-than", "12h")
    assert hours.returncode == 0 and hours.stdout.startswith("0 item(s) older than 12h")
    purged = mailwarden("quarantine", "purge", "-c", str(gw.config), "--older-than", "0")
    assert purged.returncode == 0 and purged.stdout.startswith("1 item(s)")
    bad = mailwarden("quarantine", "purge", "-c", str(gw.config), "--older-than", "-1")
    assert bad.returncode == 2 and "--older-than" in bad.stderr
    junk = mailwarden("quarantine", "purge", "-c", str(gw.config), "--older-than", "soon")
    assert junk.returncode == 2 and "30m, 12h, 7d" in junk.stderr


def test_a_second_starttls_inside_tls_gets_503(make_gateway, sink, certificate):
    cert, key, client_context = certificate
    gw = make_gateway(smtp={"tls_cert": str(cert), "tls_key": str(key)})
    with smtplib.SMTP("127.0.0.1", gw.port, timeout=10) as client:
        client.ehlo("client.test")
        client.starttls(context=client_context)
        client.ehlo("client.test")
        assert not client.has_extn("starttls")
        assert client.docmd("STARTTLS") == (503, b"5.5.1 TLS already active")
        client.sendmail("a@sender.test", ["bob@example.test"], message(subject="still fine"))
    assert len(sink.wait_for(1)) == 1
