"""End to end through real SMTP: a domain admin's rules change decisions (and are
reloaded live), blocked sources are refused at RCPT with 550 5.7.1, and abuse@ and
postmaster@ still receive their mail."""

from __future__ import annotations

import smtplib
import textwrap
import time
from email.message import EmailMessage

import pytest

from gateway.cli import main as cli_main
from gateway.store import quarantine
from tests.support.gateway import InProcessGateway, write_config
from tests.support.mail import RawSmtp, message
from tests.support.wait import wait_until
from tests.unit.filters.rules.test_rules_lang import EXAMPLE


def exe_message() -> bytes:
    msg = EmailMessage()
    msg["From"] = "a@sender.test"
    msg["To"] = "bob@example.test"
    msg["Subject"] = "invoice"
    msg["Date"] = "Sun, 22 Nov 2026 01:00:00 +0000"
    msg["Message-ID"] = "<exe-1@sender.test>"
    msg.set_content("see attached")
    msg.add_attachment(
        b"MZ\x90\x00", maintype="application", subtype="octet-stream", filename="invoice.exe"
    )
    return msg.as_bytes().replace(b"\n", b"\r\n")


def dialogue(port: int, sender: str, rcpts: list[str], data: bytes | None) -> list[str]:
    """Replies to MAIL, each RCPT and (if any recipient was accepted) the data."""
    client = RawSmtp(port)
    client.reply()
    client.cmd("EHLO client.sender.test")
    replies = [client.cmd(f"MAIL FROM:<{sender}>")]
    accepted = False
    for rcpt in rcpts:
        reply = client.cmd(f"RCPT TO:<{rcpt}>")
        replies.append(reply)
        accepted |= reply.startswith("250")
    if accepted and data is not None:
        client.cmd("DATA")
        client.send(data + b".\r\n")
        replies.append(client.reply())
    client.cmd("QUIT")
    client.close()
    return replies


def quarantined(gw: InProcessGateway) -> list[dict]:
    return quarantine.list_items(gw.gateway.db.engine)


@pytest.fixture
def rules_dir(tmp_path):
    directory = tmp_path / "rules"
    directory.mkdir()
    (directory / "example.test.yaml").write_text(EXAMPLE)
    return directory


def test_domain_rules_tag_reject_and_allow_through_smtp(make_gateway, sink, rules_dir):
    gw = make_gateway(rules={"dir": str(rules_dir), "reload_interval": 0.2})
    pills = message(subject="CHEAP pills here")

    # cheap-pills: score 6 >= the domain's tag threshold 5: delivered, subject tagged
    assert dialogue(gw.port, "a@sender.test", ["bob@example.test"], pills)[-1].startswith("250")
    got = sink.wait_for(1)[0]
    assert b"Subject: [SPAM] CHEAP pills here" in got.data
    assert b"X-Spam-Flag: YES" in got.data and b"RULE_CHEAP_PILLS" in got.data

    # no-executables: refused at DATA with the admin's text
    replies = dialogue(gw.port, "a@sender.test", ["bob@example.test"], exe_message())
    assert replies[-1] == "550 5.7.1 executables are not accepted here"

    # partner-allow: the same pills from the partner are not spam
    dialogue(gw.port, "x@partner.test", ["bob@example.test"], message(subject="cheap pills"))
    got = sink.wait_for(2)[1]
    assert b"X-Spam-Flag: NO" in got.data and b"[SPAM]" not in got.data

    # other.test has no rules: the same message is not tagged there
    dialogue(gw.port, "a@sender.test", ["carol@other.test"], message(subject="cheap pills"))
    got = sink.wait_for(3)[2]
    assert got.rcpts == ("carol@other.test",) and b"X-Spam-Flag: NO" in got.data


def test_rule_changes_apply_without_restart_and_broken_files_are_refused(
    make_gateway, sink, rules_dir
):
    gw = make_gateway(rules={"dir": str(rules_dir), "reload_interval": 0.2})
    path = rules_dir / "example.test.yaml"
    changed = EXAMPLE.replace("then: {score: 6.0}", "then: {action: quarantine}")
    path.write_text(changed)
    wait_until(lambda: gw.gateway.pipeline.book.for_domain("example.test").rules[0].then.action)

    replies = dialogue(gw.port, "a@sender.test", ["bob@example.test"], message(subject="pills?"))
    assert replies[-1].startswith("250")  # no rule: delivered
    replies = dialogue(
        gw.port, "a@sender.test", ["bob@example.test"], message(subject="cheap pills")
    )
    assert replies[-1].startswith("250")
    held = wait_until(lambda: quarantined(gw))
    assert [(i["kind"], i["rcpts"], i["domain"]) for i in held] == [
        ("spam", ["bob@example.test"], "example.test")
    ]
    assert len(sink.wait_for(1)) == 1  # only the first one was delivered

    # a broken edit is refused; the quarantine rule stays in force
    path.write_text(changed.replace("subject:", "subjet:"))
    refused = wait_until(lambda: gw.gateway.rules.errors().get(path))
    assert "unknown condition 'subjet'" in refused[0].message
    dialogue(gw.port, "a@sender.test", ["bob@example.test"], message(subject="cheap pills 2"))
    wait_until(lambda: len(quarantined(gw)) == 2)
    assert len(sink.messages) == 1


def test_blocked_ip_is_refused_at_rcpt_but_abuse_still_gets_mail(make_gateway, sink, redis_target):
    gw = make_gateway(
        redis={"url": redis_target.url, "prefix": redis_target.prefix},
        blocklist={"list_refresh": 60.0},  # only the Redis notification can be this fast
    )
    assert dialogue(gw.port, "a@sender.test", ["bob@example.test"], None)[1].startswith("250")

    code = cli_main(
        ["lists", "add", "block", "127.0.0.1", "--reason", "spam run", "--config", str(gw.config)]
    )
    assert code == 0
    started = time.monotonic()
    replies = wait_until(
        lambda: (
            (r := dialogue(gw.port, "a@sender.test", ["bob@example.test"], None))[1].startswith(
                "550"
            )
            and r
        ),
        timeout=5.0,
    )
    assert time.monotonic() - started < 2.0
    assert replies[1] == "550 5.7.1 IP 127.0.0.1 is blocked here"

    replies = dialogue(
        gw.port,
        "a@sender.test",
        ["bob@example.test", "abuse@example.test", "postmaster@other.test"],
        message(),
    )
    assert replies[1].startswith("550 5.7.1")
    assert replies[2].startswith("250") and replies[3].startswith("250")
    assert replies[4].startswith("250")  # the message itself
    got = sink.wait_for(1)[0]
    assert set(got.rcpts) == {"abuse@example.test", "postmaster@other.test"}
    assert b"LOCAL_BLOCKLIST" in got.data  # scored, but a role account is never refused

    assert cli_main(["lists", "remove", "block", "127.0.0.1", "--config", str(gw.config)]) == 0
    wait_until(
        lambda: dialogue(gw.port, "a@sender.test", ["bob@example.test"], None)[1].startswith("250"),
        timeout=5.0,
    )


def test_domain_allow_list_wins_for_its_domain_only(make_gateway, sink):
    gw = make_gateway(blocklist={"list_refresh": 0.2})
    config = ["--config", str(gw.config)]
    assert cli_main(["lists", "add", "block", "127.0.0.0/8", *config]) == 0
    assert (
        cli_main(["lists", "add", "allow", "partner.test", "--domain", "example.test", *config])
        == 0
    )
    wait_until(lambda: gw.gateway.ports.lists.snapshot.count == 2)
    replies = dialogue(
        gw.port,
        "x@partner.test",
        ["bob@example.test", "carol@other.test"],
        message(sender="x@partner.test"),
    )
    assert replies[1].startswith("250")
    assert replies[2] == "550 5.7.1 network 127.0.0.0/8 is blocked here"
    got = sink.wait_for(1)[0]
    assert got.rcpts == ("bob@example.test",)
    assert (
        b"X-Spam-Flag: NO" in got.data
        and b"LOCAL_ALLOWLIST" not in got.data.split(b"X-Spam-Status")[0]
    )


def test_dnsbl_listed_client_is_refused_at_rcpt_naming_the_list(tmp_path, sink, dns_server):
    dns_server.zone.add("1.0.0.127.zen.bl.test", "A", "127.0.0.2")
    directory = tmp_path / "gw"
    directory.mkdir()
    config = write_config(
        directory,
        sink.address,
        {
            "dns": {"nameservers": [dns_server.nameserver], "timeout": 1.0},
            "blocklist": {"check_private": True},
        },
    )
    config.write_text(
        config.read_text()
        + textwrap.dedent(
            """
            [[dnsbl]]
            zone = "zen.bl.test"
            weight = 4.0
            reject = true
            [dnsbl.codes]
            "127.0.0.2" = { meaning = "spam source" }
            """
        )
    )
    with InProcessGateway(config) as gw:
        replies = dialogue(
            gw.port, "a@sender.test", ["bob@example.test", "abuse@example.test"], message()
        )
        assert replies[1] == "550 5.7.1 Client 127.0.0.1 is listed by zen.bl.test (spam source)"
        assert replies[2].startswith("250") and replies[3].startswith("250")
        got = sink.wait_for(1)[0]
        assert got.rcpts == ("abuse@example.test",)
        assert b"DNSBL_LISTED" in got.data


def test_dnsbl_query_starts_at_connect_before_the_client_says_anything(tmp_path, sink, dns_server):
    """The connect-time session check prefetches the client's answer from a rejecting
    DNSBL: the query is on the wire while the client has only read the greeting."""
    directory = tmp_path / "gw"
    directory.mkdir()
    config = write_config(
        directory,
        sink.address,
        {
            "dns": {"nameservers": [dns_server.nameserver], "timeout": 1.0},
            "blocklist": {"check_private": True},
        },
    )
    config.write_text(
        # a zone of its own: the in-process answer cache must not hold this client yet
        config.read_text() + '\n[[dnsbl]]\nzone = "connect.bl.test"\nweight = 4.0\nreject = true\n'
    )
    with InProcessGateway(config) as gw:
        client = smtplib.SMTP()
        code, _ = client.connect("127.0.0.1", gw.port)
        assert code == 220
        deadline = time.monotonic() + 10
        asked = []
        while time.monotonic() < deadline and not asked:
            asked = [
                q for q in dns_server.zone.queries if q[0].startswith("1.0.0.127.connect.bl.test")
            ]
            time.sleep(0.05)
        client.quit()
    assert asked, "no DNSBL query was made before EHLO"
