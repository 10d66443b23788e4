"""`mailwarden trace` on the ledger of a real gateway that took mail over SMTP."""

from __future__ import annotations

import json
import smtplib

from sqlalchemy import create_engine, select

from gateway.cli import main as cli_main
from gateway.store import ledger
from tests.support.mail import message
from tests.support.wait import wait_until


def send(port: int, sender: str, rcpts: list[str], data: bytes) -> tuple[list[int], int, str]:
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as client:
        client.ehlo("client.sender.test")
        client.mail(sender)
        codes = [client.rcpt(r)[0] for r in rcpts]
        if 250 not in codes:
            return codes, 0, ""
        code, text = client.data(data)
    return codes, code, text.decode()


def trace_json(capsys, config, *args: str) -> dict:
    capsys.readouterr()
    assert cli_main(["trace", "--config", str(config), "--json", *args]) == 0
    return json.loads(capsys.readouterr().out)


def attempts(engine, queue_id: str) -> list:
    a = ledger.delivery_attempts
    with engine.connect() as conn:
        return conn.execute(select(a).where(a.c.message_id == queue_id)).all()


def test_trace_shows_the_whole_life_of_a_mail(make_gateway, sink, capsys):
    gw = make_gateway(policy={"symbols": {"HEADER_MISSING_FROM": 12.0}})
    engine = create_engine(gw.settings.store.url)
    sink.rcpt_replies["bob@example.test"] = "451 4.2.1 Mailbox busy, try later"
    mail = message("tracked", to="bob@example.test, carol@example.test")
    msgid = next(
        line.split(b": ", 1)[1].decode()
        for line in mail.split(b"\r\n")
        if line.startswith(b"Message-ID")
    )
    _, code, reply = send(
        gw.port, "alice@sender.test", ["bob@example.test", "carol@example.test"], mail
    )
    assert code == 250
    queue_id = reply.rsplit(" ", 1)[1]
    wait_until(lambda: any(row.result == "deferred" for row in attempts(engine, queue_id)))
    sink.rcpt_replies.clear()  # the mailbox is free again: the retry goes through
    wait_until(
        lambda: any(
            row.result == "delivered" and row.rcpt == "bob@example.test"
            for row in attempts(engine, queue_id)
        )
    )

    found = trace_json(capsys, gw.config, queue_id)
    (life,) = found["messages"]
    assert life["queue_id"] == queue_id and life["message_id"] == msgid
    assert life["session"] == {
        "client_ip": "127.0.0.1",
        "client_hostname": "localhost",
        "helo": "client.sender.test",
        "tls": False,
    }
    assert life["outcome"] == "accepted" and life["mail_from"] == "alice@sender.test"
    assert "auth" in life["filters"] and "symbols" in life["filters"]["auth"]
    assert {r["rcpt"]: r["status"] for r in life["recipients"]} == {
        "bob@example.test": "delivered",
        "carol@example.test": "delivered",
    }
    bob = [d for d in life["deliveries"] if d["rcpt"] == "bob@example.test"]
    assert bob[0]["result"] == "deferred" and bob[0]["attempt"] == 1
    assert bob[0]["reply"] == "451 4.2.1 Mailbox busy, try later"
    assert bob[-1]["result"] == "delivered" and bob[-1]["attempt"] >= 2
    assert bob[-1]["reply"].startswith("250") and bob[-1]["remote"] == sink.address
    carol = [d for d in life["deliveries"] if d["rcpt"] == "carol@example.test"]
    assert [d["result"] for d in carol] == ["delivered"] and carol[0]["attempt"] == 1
    whats = [e["what"] for e in life["timeline"]]
    assert whats[:2] == ["received", "decided"]
    for_bob = [e["what"] for e in life["timeline"] if e["text"].startswith("bob@")]
    assert for_bob[0] == "decision" and for_bob[1] == "delivery deferred"
    assert for_bob[-1] == "delivery delivered"

    # by Message-ID, in text: what an operator reads
    capsys.readouterr()
    assert cli_main(["trace", "--config", str(gw.config), msgid.strip("<>")]) == 0
    text = capsys.readouterr().out
    assert f"message {queue_id}" in text and "HELO client.sender.test" in text
    assert "delivery deferred" in text and "451 4.2.1 Mailbox busy" in text


def test_trace_follows_quarantine_release_feedback_and_refusals(make_gateway, sink, capsys):
    gw = make_gateway(policy={"symbols": {"HEADER_MISSING_FROM": 12.0}})
    engine = create_engine(gw.settings.store.url)
    held = (
        b"To: dave@example.test\r\nSubject: cheap\r\nMessage-ID: <held-1@bulk.test>\r\n\r\nbuy\r\n"
    )
    _, code, reply = send(gw.port, "promo@bulk.test", ["dave@example.test"], held)
    assert code == 250
    queue_id = reply.rsplit(" ", 1)[1]
    codes, _, _ = send(gw.port, "promo@bulk.test", ["eve@elsewhere.test"], message())
    assert codes == [550]

    life = trace_json(capsys, gw.config, queue_id)["messages"][0]
    (item,) = life["quarantine"]
    assert (
        item["kind"] == "spam"
        and item["status"] == "held"
        and item["rcpts"] == ["dave@example.test"]
    )
    (rcpt,) = life["recipients"]
    assert rcpt["action"] == "quarantine" and rcpt["score"] >= 12
    assert any(s["name"] == "HEADER_MISSING_FROM" for s in rcpt["symbols"])

    assert cli_main(["quarantine", "release", "-c", str(gw.config), item["id"], "--by", "ann"]) == 0
    wait_until(lambda: any(row.result == "delivered" for row in attempts(engine, queue_id)))

    found = trace_json(capsys, gw.config, "--sender", "promo@bulk.test")
    (life,) = found["messages"]
    assert life["quarantine"][0]["status"] == "released"
    assert life["quarantine"][0]["decided_by"] == "ann"
    (fb,) = life["feedback"]
    assert fb["kind"] == "false_positive" and fb["source"] == "release" and fb["actor"] == "ann"
    (delivery,) = life["deliveries"]
    assert delivery["kind"] == "release" and delivery["result"] == "delivered"
    whats = [e["what"] for e in life["timeline"]]
    assert whats.index("quarantined") < whats.index("quarantine released")
    assert "feedback" in whats and whats[-1] in ("delivery delivered", "feedback")
    (refusal,) = found["refusals"]
    assert refusal["stage"] == "rcpt" and refusal["rcpt"] == "eve@elsewhere.test"
    assert refusal["source"] == "relay" and refusal["reply"].startswith("550 5.7.1")

    refused_only = trace_json(capsys, gw.config, "--rcpt", "eve@elsewhere.test", "--since", "1h")
    assert refused_only["messages"] == [] and len(refused_only["refusals"]) == 1
    capsys.readouterr()
    assert cli_main(["trace", "-c", str(gw.config), "--rcpt", "nobody@example.test"]) == 1
    assert "nothing found" in capsys.readouterr().out


def test_trace_on_postgresql(make_gateway, sink, postgres_url, capsys):
    gw = make_gateway(store={"url": postgres_url})
    _, code, reply = send(gw.port, "alice@sender.test", ["bob@example.test"], message("on pg"))
    assert code == 250
    queue_id = reply.rsplit(" ", 1)[1]
    engine = gw.gateway.db.engine
    assert engine.dialect.name == "postgresql"
    wait_until(lambda: attempts(engine, queue_id))
    found = trace_json(capsys, gw.config, "--rcpt", "bob@example.test", "--since", "1h")
    (life,) = found["messages"]
    assert life["queue_id"] == queue_id and life["subject"] == "on pg"
    (delivery,) = life["deliveries"]
    assert delivery["result"] == "delivered" and delivery["reply"].startswith("250")
    assert life["received_at"] <= delivery["at"]
