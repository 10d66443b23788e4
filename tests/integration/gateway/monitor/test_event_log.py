"""The gateway's log, read as an operator would: one line per verdict, delivery and
refusal, from a real `mailwarden serve` process spoken to over SMTP on loopback."""

from __future__ import annotations

import json
import smtplib
import time
from pathlib import Path

import pytest

from gateway.cli import main as cli_main
from tests.support.gateway import GatewayProcess, write_config
from tests.support.mail import RawSmtp, message


def _events(log: Path) -> list[dict]:
    out = []
    for line in log.read_text().splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if "event" in record:
                out.append(record)
    return out


def _wait_for(log: Path, predicate, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate(log)
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"not in the log in {timeout}s:\n{log.read_text()[-4000:]}")


def _send(port: int, sender: str, rcpts: list[str], data: bytes) -> tuple[dict, tuple]:
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as client:
        client.ehlo("client.sender.test")
        refused: dict = {}
        client.mail(sender)
        for rcpt in rcpts:
            code, text = client.rcpt(rcpt)
            if code >= 400:
                refused[rcpt] = (code, text.decode())
        result = client.data(data) if len(refused) < len(rcpts) else (None, b"")
    return refused, result


@pytest.fixture
def json_gateway(tmp_path, sink, dns_server):
    config = write_config(
        tmp_path,
        sink.address,
        {
            "log": {"format": "json"},
            "policy": {"symbols": {"HEADER_MISSING_FROM": 20.0}},
            "dns": {"nameservers": [dns_server.nameserver]},
            "pipeline": {"disable": ["classifier"]},
        },
    )
    block = ["lists", "add", "block", "spammer@bulk.test", "--config", str(config)]
    assert cli_main(block) == 0
    gateway = GatewayProcess(config).start()
    yield gateway
    gateway.stop()


def test_json_log_answers_why_a_mail_was_rejected(json_gateway, sink):
    port = json_gateway.port
    log = json_gateway.log

    _, (code, reply) = _send(port, "alice@sender.test", ["bob@example.test"], message("fine"))
    assert code == 250
    accepted_id = reply.decode().rsplit(" ", 1)[1]

    no_from = b"To: bob@example.test\r\nSubject: no sender\r\n\r\nbuy now\r\n"
    _, (code, reply) = _send(port, "bulk@sender.test", ["bob@example.test"], no_from)
    assert code == 550

    refused, _ = _send(
        port, "alice@sender.test", ["bob@example.test", "carol@elsewhere.test"], message()
    )
    assert refused["carol@elsewhere.test"][0] == 550
    refused, _ = _send(port, "spammer@bulk.test", ["bob@example.test"], message())
    assert refused["bob@example.test"][0] == 550
    raw = RawSmtp(port)
    raw.reply()
    raw.cmd("EHLO client.sender.test")
    assert raw.cmd("MAIL FROM:<a..b@sender.test>").startswith("501 5.1.7")
    raw.close()

    events = _wait_for(
        log,
        lambda p: (
            (e := _events(p))
            and sum(x["event"] == "delivery" for x in e) >= 2
            and sum(x["event"] == "refusal" for x in e) >= 3
            and e
        ),
    )
    verdicts = [e for e in events if e["event"] == "verdict"]
    rejected = next(v for v in verdicts if v["outcome"] == "rejected")
    # the operator's question, answered from this one line
    assert rejected["mail_from"] == "bulk@sender.test"
    assert rejected["rcpts"] == ["bob@example.test"]
    assert rejected["client"] == {
        "ip": "127.0.0.1",
        "hostname": "localhost",
        "helo": "client.sender.test",
        "tls": False,
    }
    assert rejected["reply"].startswith("550 5.7.1")
    (rcpt,) = rejected["recipients"]
    assert rcpt["rcpt"] == "bob@example.test" and rcpt["domain"] == "example.test"
    assert rcpt["action"] == "reject"
    assert rcpt["symbols"]["HEADER_MISSING_FROM"] == 20.0
    assert rcpt["score"] >= 20.0
    assert rcpt["reasons"], rcpt
    assert rejected["timings_ms"]["total"] > 0 and "message" in rejected["timings_ms"]
    assert rejected["level"] == "info" and rejected["logger"] == "mailwarden.events"

    accepted = next(v for v in verdicts if v["queue_id"] == accepted_id)
    assert accepted["outcome"] == "accepted"
    assert [r["action"] for r in accepted["recipients"]] == ["accept"]
    assert accepted["message_id"].endswith("@sender.test>")
    assert accepted["viruses"] == []

    delivered = [e for e in events if e["event"] == "delivery" and e["queue_id"] == accepted_id]
    assert len(delivered) == 1
    assert delivered[0]["result"] == "delivered" and delivered[0]["rcpt"] == "bob@example.test"
    assert delivered[0]["reply"].startswith("250") and delivered[0]["attempt"] == 1
    assert 0 <= delivered[0]["delay_s"] < 20 and delivered[0]["remote"] == sink.address

    refusals = {e["source"]: e for e in events if e["event"] == "refusal"}
    relay = refusals["relay"]
    assert relay["stage"] == "rcpt" and relay["rcpt"] == "carol@elsewhere.test"
    assert relay["mail_from"] == "alice@sender.test" and relay["client"]["ip"] == "127.0.0.1"
    assert relay["reply"].startswith("550 5.7.1 Relaying denied")
    blocked = refusals["blocklist"]
    assert blocked["mail_from"] == "spammer@bulk.test"
    assert "spammer@bulk.test is blocked" in blocked["reply"]
    syntax = refusals["syntax"]  # not in the ledger (no evidence), but in the log
    assert syntax["stage"] == "mail" and syntax["mail_from"] == "a..b@sender.test"
    assert syntax["reply"] == "501 5.1.7 Bad sender address syntax"
    # every line of the log is JSON, not only the events
    assert all(line.startswith("{") for line in log.read_text().splitlines() if line.strip())


def test_text_log_names_the_reason_and_the_sender(tmp_path, sink, dns_server):
    config = write_config(
        tmp_path,
        sink.address,
        {
            "policy": {"symbols": {"HEADER_MISSING_FROM": 20.0}},
            "dns": {"nameservers": [dns_server.nameserver]},
            "pipeline": {"disable": ["classifier"]},
        },
    )
    gateway = GatewayProcess(config).start()
    try:
        no_from = b"To: bob@example.test\r\nSubject: no sender\r\n\r\nbuy now\r\n"
        _, (code, reply) = _send(gateway.port, "bulk@sender.test", ["bob@example.test"], no_from)
        assert code == 550
        line = _wait_for(
            gateway.log,
            lambda p: next((x for x in p.read_text().splitlines() if ": rejected from" in x), None),
        )
    finally:
        gateway.stop()
    assert "mailwarden.events" in line and "<bulk@sender.test>" in line
    assert "bob@example.test=reject" in line and reply.decode() in line
