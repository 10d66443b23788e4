"""Outbound: the protected server's users send through the gateway to the internet.

Real parts only: the gateway on loopback, the loopback DNS server answering the MX
and address queries, a second SMTP sink standing in for the remote domain's MX, the
real accounts commands. Scanned like inbound mail; spam or a rate over the limit
suspends the sending account; no relay for anyone outside trusted_networks."""

from __future__ import annotations

import contextlib
import json
import smtplib
import time

import pytest
from sqlalchemy import select

from gateway.store import accounts, audit, ledger
from tests.integration.gateway.cli.operator_run import mailwarden
from tests.support.mail import message
from tests.support.wait import wait_until

SPAM_BODY = (
    "Buy cheap viagra pills now, limited offer, click here http://spam.test/\r\n"
    "cheap pills, limited offer, buy now, click here, free money, winner\r\n"
)


def _outbound(make_gateway, remote_mx, **outbound):
    values = {"trusted_networks": ["127.0.0.0/8"], "mx_port": remote_mx.port, **outbound}
    return make_gateway(outbound=values, delivery={"retry_schedule": [0.3], "poll_interval": 0.1})


def _send(gw, sender: str, rcpts: list[str], data: bytes) -> dict:
    with smtplib.SMTP("127.0.0.1", gw.port, timeout=20) as client:
        return client.sendmail(sender, rcpts, data)


def _wait(predicate, timeout: float = 15.0):
    return wait_until(predicate, timeout, 0.05)


def test_trusted_client_relays_to_the_recipients_mx_and_ours_to_the_next_hop(
    make_gateway, remote_mx, sink, dns_server
):
    gw = _outbound(make_gateway, remote_mx)
    data = message(sender="alice@example.test", to="carol@remote.test")
    assert _send(gw, "alice@example.test", ["carol@remote.test", "bob@example.test"], data) == {}
    (out,) = remote_mx.wait_for(1)
    assert out.rcpts == ("carol@remote.test",) and out.mail_from == "alice@example.test"
    assert b"X-Spam-Status" in out.data or b"Authentication-Results" in out.data  # scanned
    (inside,) = sink.wait_for(1)
    assert inside.rcpts == ("bob@example.test",)
    assert ("remote.test", "MX") in dns_server.zone.queries  # through our DNS adapter
    assert ("mx.remote.test", "A") in dns_server.zone.queries


def test_no_relay_for_a_client_outside_trusted_networks(make_gateway, remote_mx):
    gw = _outbound(make_gateway, remote_mx, trusted_networks=["192.0.2.0/24"])
    with smtplib.SMTP("127.0.0.1", gw.port, timeout=20) as client:
        client.ehlo()
        client.mail("alice@example.test")
        code, text = client.rcpt("carol@remote.test")
    assert code == 550 and b"5.7.1" in text
    time.sleep(0.3)
    assert remote_mx.messages == []


def test_mx_refusal_bounces_to_our_sender(make_gateway, remote_mx, sink):
    remote_mx.rcpt_replies["ghost@remote.test"] = "550 5.1.1 no such user"
    gw = _outbound(make_gateway, remote_mx)
    _send(gw, "alice@example.test", ["ghost@remote.test"], message(to="ghost@remote.test"))
    (dsn,) = sink.wait_for(1)  # the sender is ours: her DSN goes to the protected server
    assert dsn.rcpts == ("alice@example.test",) and dsn.mail_from == ""
    assert b"Status: 5.1.1" in dsn.data and b"ghost@remote.test" in dsn.data


def _refused_at_mail(gw, sender: str) -> tuple[int, bytes]:
    with smtplib.SMTP("127.0.0.1", gw.port, timeout=20) as client:
        client.ehlo()
        return client.mail(sender)


def test_spam_suspends_the_account_until_restored(make_gateway, remote_mx, sink):
    gw = _outbound(make_gateway, remote_mx, suspend_score=5.0, suspension_cache=1.0)
    config = str(gw.config)
    ham = message(subject="minutes of today", to="carol@remote.test",
                  body="Hello Carol, the minutes of the meeting are below.\r\n")  # fmt: skip
    assert _send(gw, "alice@example.test", ["carol@remote.test"], ham) == {}
    remote_mx.wait_for(1)
    spam = message(subject="cheap pills, limited offer", to="carol@remote.test", body=SPAM_BODY)
    with contextlib.suppress(smtplib.SMTPDataError):  # refused or accepted: suspended
        _send(gw, "mallory@example.test", ["carol@remote.test"], spam)
    engine = gw.gateway.db.engine
    _wait(lambda: accounts.suspension(engine, "mallory@example.test"))
    assert accounts.suspension(engine, "alice@example.test") is None

    code, text = _refused_at_mail(gw, "Mallory@example.test")
    assert code == 550 and b"5.7.1" in text and b"suspended" in text

    def refused() -> list:
        with engine.connect() as conn:
            return conn.execute(
                select(ledger.refusals).where(ledger.refusals.c.source == "suspended")
            ).all()

    assert [r.mail_from for r in _wait(refused)] == ["Mallory@example.test"]

    listed = mailwarden("accounts", "list", "--json", "-c", config)
    assert listed.returncode == 0, listed.stderr
    (entry,) = json.loads(listed.stdout)
    assert entry["address"] == "mallory@example.test" and entry["changed_by"] == "auto:score"
    assert "scored" in entry["reason"]

    back = mailwarden("accounts", "restore", "mallory@example.test", "--reason",
                      "password changed", "--by", "ann", "-c", config)  # fmt: skip
    assert back.returncode == 0, back.stderr
    # no Redis here: the node's cached answer lasts up to suspension_cache (1 s)
    _wait(lambda: _refused_at_mail(gw, "mallory@example.test")[0] == 250, timeout=5)
    shown = mailwarden("accounts", "show", "mallory@example.test", "--json", "-c", config)
    events = json.loads(shown.stdout)
    assert [(e["action"], e["by"]) for e in events] == [("suspend", "auto:score"),
                                                        ("restore", "ann")]  # fmt: skip


def test_rate_limit_counted_in_redis_suspends_with_tempfail(make_gateway, remote_mx, redis_target):
    gw = make_gateway(
        outbound={"trusted_networks": ["127.0.0.0/8"], "mx_port": remote_mx.port,
                  "suspend_score": 1000.0, "rate_limit": 2, "rate_window": 60.0,
                  "suspended_reply": "tempfail"},
        redis={"url": redis_target.url, "prefix": redis_target.prefix},
    )  # fmt: skip
    for n in range(3):
        _send(gw, "bulk@example.test", ["carol@remote.test"], message(subject=f"news {n}"))
    engine = gw.gateway.db.engine
    found = _wait(lambda: accounts.suspension(engine, "bulk@example.test"))
    assert found.changed_by == "auto:rate" and "3 messages" in found.reason
    code, text = _refused_at_mail(gw, "bulk@example.test")
    assert code == 450 and b"4.7.1" in text

    import redis

    client = redis.Redis.from_url(redis_target.url)
    assert int(client.get(f"{redis_target.prefix}outbound-rate:bulk@example.test")) == 3


def test_suspend_by_hand_refuses_and_names_who(make_gateway, remote_mx):
    gw = _outbound(make_gateway, remote_mx)
    config = str(gw.config)
    done = mailwarden("accounts", "suspend", "eve@example.test", "--reason", "phished",
                      "--by", "ann", "-c", config)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "suspended: eve@example.test (by ann: phished)" in done.stdout
    again = mailwarden("accounts", "suspend", "eve@example.test", "--reason", "x", "-c", config)
    assert again.returncode == 2 and "already suspended" in again.stderr
    code, text = _refused_at_mail(gw, "eve@example.test")
    assert code == 550 and b"phished" in text
    (row,) = audit.entries(gw.gateway.db.engine, ["example.test"], object_id="eve@example.test")
    assert (row["actor"], row["action"]) == ("ann", "accounts.suspend")
    assert row["after"] == {"suspended": True, "reason": "phished"}
    bad = mailwarden("accounts", "suspend", "not an address", "--reason", "x", "-c", config)
    assert bad.returncode == 2 and "not a mailbox address" in bad.stderr


def test_suspensions_are_cached_and_changes_reach_the_node_through_redis(
    make_gateway, remote_mx, redis_target
):
    """The suspension check at MAIL asks the database once, not per MAIL; a suspension
    or restoration by the CLI (another process) applies at once through Redis, long
    before the cache's minute runs out."""
    from sqlalchemy import event

    gw = make_gateway(
        outbound={"trusted_networks": ["127.0.0.0/8"], "mx_port": remote_mx.port,
                  "suspension_cache": "60s"},
        redis={"url": redis_target.url, "prefix": redis_target.prefix},
    )  # fmt: skip
    config = str(gw.config)
    asked: list[str] = []

    def count(conn, cursor, statement, *args) -> None:
        if "FROM sending_accounts" in statement:
            asked.append(statement)

    import redis

    # the node empties its cache when its subscription begins: count after that
    client = redis.Redis.from_url(redis_target.url)
    channel = f"{redis_target.prefix}accounts:changed".encode()
    _wait(lambda: dict(client.pubsub_numsub(channel)).get(channel) == 1)
    client.close()
    engine = gw.gateway.db.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        for _ in range(10):
            assert _refused_at_mail(gw, "alice@example.test")[0] == 250
        assert len(asked) == 1

        for verb, expected in (("suspend", 550), ("restore", 250)):
            done = mailwarden("accounts", verb, "alice@example.test", "--reason", "test",
                              "--by", "ann", "-c", config)  # fmt: skip
            assert done.returncode == 0, done.stderr
            started = time.monotonic()
            _wait(lambda want=expected: _refused_at_mail(gw, "alice@example.test")[0] == want,
                  timeout=5)  # fmt: skip
            assert time.monotonic() - started < 5  # not the 60 s of the cache
    finally:
        event.remove(engine, "before_cursor_execute", count)


VIRUS_SENDER = "infected@example.test"


@pytest.mark.parametrize("suspend_on_virus", [True, False])
def test_a_virus_in_outbound_mail_is_refused_and_suspends_its_sender(
    make_gateway, remote_mx, clamd, suspend_on_virus
):
    from tests.support.virusmail import EICAR, Payload, Shapes

    gw = make_gateway(
        outbound={"trusted_networks": ["127.0.0.0/8"], "mx_port": remote_mx.port,
                  "suspend_score": 1000.0, "suspend_on_virus": suspend_on_virus},
        clamav={"socket": str(clamd.socket), "timeout": 10.0},
    )  # fmt: skip
    infected = Shapes(Payload("notes.txt", b"hello\r\n")).base64(EICAR, "invoice.doc", "o1")
    with pytest.raises(smtplib.SMTPDataError) as refused:
        _send(gw, VIRUS_SENDER, ["carol@remote.test"], infected.encode())
    assert refused.value.smtp_code == 550 and b"Virus found" in refused.value.smtp_error
    engine = gw.gateway.db.engine
    if not suspend_on_virus:
        time.sleep(0.5)
        assert accounts.suspension(engine, VIRUS_SENDER) is None
        assert _refused_at_mail(gw, VIRUS_SENDER)[0] == 250
        return
    found = _wait(lambda: accounts.suspension(engine, VIRUS_SENDER))
    assert found.changed_by == "auto:virus" and "EICAR" in found.reason
    code, text = _refused_at_mail(gw, VIRUS_SENDER)  # at once: this node's own suspension
    assert code == 550 and b"virus" in text
    assert remote_mx.messages == []


def test_sighup_applies_a_new_trusted_networks_and_accept_list(
    tmp_path, sink, dns_server, remote_mx
):
    """An operator who finds a network wrongly trusted takes it out and sends SIGHUP: the
    relaying stops at the next RCPT, with no restart (which would drop sessions)."""
    import signal

    from tests.support.gateway import GatewayProcess, write_config

    extra = {
        "dns": {"nameservers": [dns_server.nameserver], "timeout": 1.0},
        "outbound": {"trusted_networks": ["127.0.0.0/8"], "mx_port": remote_mx.port},
    }
    config = write_config(tmp_path, sink.address, extra)
    gateway = GatewayProcess(config).start()
    try:
        data = message(sender="alice@example.test", to="carol@remote.test")
        assert _send(gateway, "alice@example.test", ["carol@remote.test"], data) == {}
        remote_mx.wait_for(1)

        text = config.read_text()
        text = text.replace(
            'trusted_networks = ["127.0.0.0/8"]', 'trusted_networks = ["192.0.2.0/24"]'
        )
        text = text.replace('accept = ["example.test", "other.test"]',
                            'accept = ["example.test", "other.test", "third.test"]')  # fmt: skip
        config.write_text(text)
        gateway.signal(signal.SIGHUP)
        _wait(lambda: "reloaded (SIGHUP)" in gateway.log.read_text())

        with smtplib.SMTP("127.0.0.1", gateway.port, timeout=20) as client:
            client.ehlo()
            client.mail("alice@example.test")
            code, reply = client.rcpt("carol@remote.test")
            assert code == 550 and b"5.7.1" in reply  # no longer trusted: no relay
            assert client.rcpt("dan@third.test")[0] == 250  # a newly accepted domain
        assert len(remote_mx.messages) == 1
    finally:
        gateway.stop()
    assert gateway.proc is not None and gateway.proc.returncode == 0
