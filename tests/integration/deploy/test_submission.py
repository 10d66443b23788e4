"""The submission port: users log in with AUTH over TLS and send to the internet.

Real parts only: the gateway's submission port on loopback with a certificate made in
the test, smtplib as the user's mail client (STARTTLS, AUTH PLAIN and LOGIN, implicit
TLS), passwords set with the real `mailwarden accounts passwd`, the loopback DNS
server answering remote.test's MX, an SMTP sink as that MX, a real clamd."""

from __future__ import annotations

import base64
import smtplib

import pytest
from sqlalchemy import select

from gateway.config import ConfigError, settings_from_dict
from gateway.store import accounts, ledger, sessions
from tests.integration.gateway.cli.operator_run import mailwarden
from tests.support import tls
from tests.support.mail import message
from tests.support.smtp_sink import free_port
from tests.support.virusmail import EICAR, Payload, Shapes
from tests.support.wait import wait_until

PASSWORD = "correct horse battery"


@pytest.fixture
def certificate(tmp_path):
    return tls.issue(tmp_path, "mx.example.test", "127.0.0.1")


def _submission(make_gateway, remote_mx, certificate, outbound=None, **sections):
    cert, key, _ = certificate
    values = {
        "submission_listen": f"127.0.0.1:{free_port()}",
        "submission_tls_listen": f"127.0.0.1:{free_port()}",
        "mx_port": remote_mx.port,
        **(outbound or {}),
    }
    return make_gateway(
        smtp={"tls_cert": str(cert), "tls_key": str(key)},
        outbound=values,
        delivery={"retry_schedule": [0.3], "poll_interval": 0.1},
        **sections,
    )


def _port(gw, which: int = 0) -> int:
    return gw.gateway.submission_addresses[which][1]


def _passwd(gw, address: str, password: str = PASSWORD):
    done = mailwarden("accounts", "passwd", address, "--password-stdin", "--by", "ann",
                      "-c", str(gw.config), stdin=password + "\n")  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done


def _client(gw, certificate) -> smtplib.SMTP:
    client = smtplib.SMTP("127.0.0.1", _port(gw), timeout=20)
    client.ehlo("laptop.example.test")
    client.starttls(context=certificate[2])
    client.ehlo("laptop.example.test")
    return client


def _login(client: smtplib.SMTP, address: str, password: str) -> tuple[int, bytes]:
    """AUTH PLAIN once (smtplib's login() would try LOGIN after a refused PLAIN)."""
    client.user, client.password = address, password
    try:
        return client.auth("PLAIN", client.auth_plain)
    except smtplib.SMTPAuthenticationError as exc:
        return exc.smtp_code, exc.smtp_error


def _wait(predicate, timeout: float = 15.0):
    return wait_until(predicate, timeout, 0.05)


def _messages(gw) -> list[dict]:
    with gw.gateway.db.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(ledger.messages))]


def test_login_over_starttls_then_mail_is_scanned_and_relayed_to_the_mx(
    make_gateway, remote_mx, certificate, dns_server
):
    gw = _submission(make_gateway, remote_mx, certificate)
    assert "password set (new account)" in _passwd(gw, "Alice@example.test").stdout

    with smtplib.SMTP("127.0.0.1", _port(gw), timeout=20) as client:
        client.ehlo("laptop.example.test")
        assert client.has_extn("starttls") and not client.has_extn("auth")  # not in clear
        plain = base64.b64encode(f"\0alice@example.test\0{PASSWORD}".encode()).decode()
        code, text = client.docmd("AUTH", f"PLAIN {plain}")
        assert code == 538 and b"5.7.11" in text
        code, text = client.mail("alice@example.test")
        assert code == 530 and b"5.7.0" in text  # no AUTH, no mail
        client.starttls(context=certificate[2])
        client.ehlo("laptop.example.test")
        assert client.esmtp_features["auth"].split() == ["LOGIN", "PLAIN"]
        code, text = client.mail("alice@example.test")
        assert code == 530 and b"5.7.0" in text  # TLS alone is not enough
        code, text = _login(client, "alice@example.test", "not the password")
        assert code == 535 and b"5.7.8" in text
        assert _login(client, "Alice@example.test", PASSWORD)[0] == 235
        code, text = client.mail("mallory@example.test")  # not hers
        assert code == 553 and b"5.7.1" in text
        client.rset()
        data = message(sender="alice@example.test", to="carol@remote.test")
        assert client.sendmail("alice@example.test", ["carol@remote.test"], data) == {}

    (out,) = remote_mx.wait_for(1)
    assert out.rcpts == ("carol@remote.test",) and out.mail_from == "alice@example.test"
    assert b"X-Spam-Status" in out.data  # scanned on the way
    assert ("remote.test", "MX") in dns_server.zone.queries
    (row,) = _messages(gw)
    assert (row["auth_account"], row["outcome"], row["tls"]) == ("alice@example.test",
                                                                 "accepted", True)  # fmt: skip
    with gw.gateway.db.engine.connect() as conn:
        attempts = conn.execute(select(sessions.login_attempts)).all()
    assert [(a.username, a.ok, a.service) for a in attempts] == [
        ("alice@example.test", False, "submission"),
        ("alice@example.test", True, "submission"),
    ]


def test_auth_login_and_implicit_tls(make_gateway, remote_mx, certificate):
    gw = _submission(make_gateway, remote_mx, certificate, {"auth_sender": "domain"})
    _passwd(gw, "bob@example.test")
    with _client(gw, certificate) as client:
        client.user, client.password = "bob@example.test", PASSWORD
        assert client.auth("LOGIN", client.auth_login)[0] == 235
        # auth_sender = "domain": another address of bob's domain, not another domain
        assert client.mail("sales@example.test")[0] == 250
        client.rset()
        code, text = client.mail("bob@other.test")
        assert code == 553 and b"5.7.1" in text
    with smtplib.SMTP_SSL("127.0.0.1", _port(gw, 1), timeout=20,
                          context=certificate[2]) as client:  # fmt: skip
        client.ehlo("laptop.example.test")
        assert client.has_extn("auth") and not client.has_extn("starttls")
        client.login("bob@example.test", PASSWORD)
        client.sendmail("bob@example.test", ["dave@remote.test"], message(to="dave@remote.test"))
    (out,) = remote_mx.wait_for(1)
    assert out.rcpts == ("dave@remote.test",)
    assert [r["auth_account"] for r in _messages(gw)] == ["bob@example.test"]


def test_failed_logins_are_limited_per_account_and_per_address(
    make_gateway, remote_mx, certificate
):
    gw = _submission(make_gateway, remote_mx, certificate,
                     {"auth_max_failures_account": 2, "auth_max_failures_address": 4})  # fmt: skip
    for address in ("alice@example.test", "bob@example.test", "carol@example.test"):
        _passwd(gw, address)

    def login(address: str, password: str) -> tuple[int, bytes]:
        with _client(gw, certificate) as client:
            return _login(client, address, password)

    assert login("alice@example.test", "guess one")[0] == 535
    assert login("alice@example.test", "guess two")[0] == 535
    code, text = login("alice@example.test", PASSWORD)  # right, but too late
    assert code == 454 and b"4.7.0" in text and b"Too many failed logins" in text
    assert login("bob@example.test", PASSWORD)[0] == 235  # another account: fine
    assert login("bob@example.test", "guess three")[0] == 535
    assert login("nobody@example.test", "guess four")[0] == 535
    code, _ = login("carol@example.test", PASSWORD)  # four failures from this address
    assert code == 454


def test_suspended_account_is_refused_at_auth_and_at_mail(make_gateway, remote_mx, certificate):
    gw = _submission(make_gateway, remote_mx, certificate)
    config = str(gw.config)
    _passwd(gw, "eve@example.test")
    with _client(gw, certificate) as early:  # logged in before the suspension
        early.login("eve@example.test", PASSWORD)
        done = mailwarden("accounts", "suspend", "eve@example.test", "--reason", "phished",
                          "--by", "ann", "-c", config)  # fmt: skip
        assert done.returncode == 0, done.stderr
        code, text = early.mail("eve@example.test")
        assert code == 550 and b"5.7.1" in text and b"phished" in text
    with _client(gw, certificate) as client:
        code, text = _login(client, "eve@example.test", PASSWORD)
    assert code == 535 and b"5.7.8" in text and b"suspended (phished)" in text

    def refusals() -> list:
        with gw.gateway.db.engine.connect() as conn:
            return conn.execute(select(ledger.refusals).order_by(ledger.refusals.c.id)).all()

    rows = _wait(lambda: len(refusals()) == 2 and refusals())
    assert [(r.stage, r.source) for r in rows] == [("mail", "suspended"), ("auth", "suspended")]
    listed = mailwarden("accounts", "list", "--all", "-c", config)
    assert "eve@example.test" in listed.stdout and "suspended" in listed.stdout


def test_virus_from_a_logged_in_user_is_refused_and_in_the_ledger(
    make_gateway, remote_mx, certificate, clamd
):
    gw = _submission(make_gateway, remote_mx, certificate,
                     clamav={"socket": str(clamd.socket), "timeout": 10.0})  # fmt: skip
    _passwd(gw, "alice@example.test")
    infected = Shapes(Payload("notes.txt", b"see attached\r\n")).base64(EICAR, "invoice.doc", "s1")
    with _client(gw, certificate) as client:
        client.login("alice@example.test", PASSWORD)
        with pytest.raises(smtplib.SMTPDataError) as refused:
            client.sendmail("alice@example.test", ["carol@remote.test"], infected.encode())
    assert refused.value.smtp_code == 550 and b"Virus found" in refused.value.smtp_error
    (row,) = _messages(gw)
    assert row["outcome"] == "rejected" and row["virus_found"]
    assert row["auth_account"] == "alice@example.test"
    assert row["viruses"] == ["Mailwarden.Test.EICAR.UNOFFICIAL"]
    # [outbound] suspend_on_virus: the account that logged in is suspended for it
    found = _wait(lambda: accounts.suspension(gw.gateway.db.engine, "alice@example.test"))
    assert found.changed_by == "auto:virus"
    assert remote_mx.messages == []


def test_submission_needs_a_certificate_and_passwd_its_rules(tmp_path):
    base = {"domains": {"accept": ["example.test"]}, "delivery": {"next_hop": "127.0.0.1:25"},
            "spool": {"path": str(tmp_path)}, "store": {"url": "sqlite://"}}  # fmt: skip
    with pytest.raises(ConfigError, match=r"outbound\.submission_listen: needs smtp\.tls_cert"):
        settings_from_dict({**base, "outbound": {"submission_listen": "127.0.0.1:587"}})
    config = tmp_path / "mw.toml"
    config.write_text(f'[domains]\naccept = ["example.test"]\n[delivery]\nnext_hop = '
                      f'"127.0.0.1:25"\n[spool]\npath = "{tmp_path}"\n[store]\n'
                      f'url = "sqlite:///{tmp_path}/ledger.db"\n')  # fmt: skip
    short = mailwarden("accounts", "passwd", "a@example.test", "--password-stdin", "-c",
                       str(config), stdin="short\n")  # fmt: skip
    assert short.returncode == 2 and "at least 10 characters" in short.stderr
    _ok = mailwarden("accounts", "passwd", "a@example.test", "--password-stdin", "-c",
                     str(config), stdin=PASSWORD + "\n")  # fmt: skip
    assert _ok.returncode == 0, _ok.stderr
    off = mailwarden("accounts", "passwd", "a@example.test", "--no-login", "-c", str(config))
    assert off.returncode == 0 and "may no longer log in" in off.stdout
    from gateway.store.db import make_engine

    engine = make_engine(f"sqlite:///{tmp_path}/ledger.db")
    assert accounts.authenticate(engine, "a@example.test", PASSWORD) is None
    engine.dispose()
