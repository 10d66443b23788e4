"""The aiosmtpd internals gateway.smtp.protocol relies on, checked on a live session:
an aiosmtpd upgrade that renames one fails here, by name, before anything subtler."""

from __future__ import annotations

import time

from gateway.smtp import protocol
from tests.support.mail import RawSmtp


def live_session(gw):
    deadline = time.monotonic() + 10
    while not gw.gateway.smtp.sessions and time.monotonic() < deadline:
        time.sleep(0.02)
    return next(iter(gw.gateway.smtp.sessions))


def test_every_aiosmtpd_internal_we_use_exists(gateway):
    assert protocol.missing_internals() == []
    client = RawSmtp(gateway.port)
    assert client.reply().startswith("220")
    session = live_session(gateway)
    assert protocol.missing_internals(session) == []
    # the patched module globals are still what aiosmtpd calls: no AUTH scan, and
    # the hooks it found on the handler are ours
    assert session._auth_methods == {}
    assert {"MAIL", "RCPT", "DATA", "EHLO"} <= set(session._handle_hooks)
    assert client.cmd("AUTH PLAIN AGFAAGI=").startswith("5")
    client.close()


def test_the_tested_aiosmtpd_is_the_one_installed():
    assert protocol.aiosmtpd_version() in protocol.TESTED_VERSIONS
