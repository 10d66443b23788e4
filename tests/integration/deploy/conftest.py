"""Fixtures of the deployment tests."""

from __future__ import annotations

import pytest

from tests.support.smtp_sink import SmtpSink


@pytest.fixture
def remote_mx(dns_server):
    """remote.test's MX, served by the loopback DNS server, is an SMTP sink on loopback."""
    with SmtpSink() as mx:
        dns_server.zone.add("remote.test", "MX", (10, "mx.remote.test."))
        dns_server.zone.add("mx.remote.test", "A", "127.0.0.1")
        yield mx
