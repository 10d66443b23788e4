"""ARC (RFC 8617): a mailing list seals a message it changed; we report the chain."""

from __future__ import annotations

import pytest

from tests.support.authrun import AuthHarness
from tests.support.mailauth import arc_seal, context, message, publish, rsa_key, sign


@pytest.fixture
def auth(dns_server):
    return AuthHarness(dns_server.nameserver)


def _through_list(zone) -> bytes:
    """Signed by example.test, footer added by list.test, then sealed by list.test."""
    publish(zone, "rsa1", "example.test", rsa_key())
    publish(zone, "arc1", "list.test", rsa_key())
    signed = sign(message(), "rsa1", "example.test", rsa_key())
    received = b"Authentication-Results: list.test; dkim=pass header.d=example.test\r\n" + signed
    changed = received.replace(b"attached.\r\n", b"attached.\r\n-- \r\nlist footer\r\n")
    return arc_seal(changed, "arc1", "list.test", rsa_key(), "list.test")


def test_sealed_message_passes_arc_while_dkim_fails(dns_server, auth):
    raw = _through_list(dns_server.zone)
    run = auth.run(context(raw, mail_from="list-bounces@list.test"))
    assert {"ARC_PASS", "DKIM_FAIL"} <= run.names
    assert run.evidence.arc.instances == 1
    assert "arc=pass" in run.header


def test_change_after_sealing_breaks_the_chain(dns_server, auth):
    raw = _through_list(dns_server.zone).replace(b"list footer", b"click here")
    run = auth.run(context(raw))
    assert "ARC_FAIL" in run.names
    assert "arc=fail" in run.header


def test_seal_key_lookup_failure_is_temperror(dns_server, auth):
    raw = _through_list(dns_server.zone)
    dns_server.zone.fail("arc1._domainkey.list.test")
    run = auth.run(context(raw))
    assert "ARC_TEMPERROR" in run.names


def test_garbage_arc_headers_fail_without_exception(dns_server, auth):
    raw = b"ARC-Seal: i=1; nonsense\r\nARC-Message-Signature: i=1; ;;;\r\n" + message()
    run = auth.run(context(raw))
    assert "ARC_FAIL" in run.names


def test_message_without_arc_has_no_arc_symbol(dns_server, auth):
    run = auth.run(context(message()))
    assert not any(n.startswith("ARC_") for n in run.names)
    assert "; arc=" not in run.header
