"""DKIM through the auth filter: messages signed in the test, keys in the loopback DNS."""

from __future__ import annotations

import re

import pytest

from tests.support.authrun import AuthHarness
from tests.support.mailauth import (
    context,
    ed25519_key,
    message,
    publish,
    rsa_key,
    sign,
    with_algorithm,
)


@pytest.fixture
def auth(dns_server):
    return AuthHarness(dns_server.nameserver)


def test_rsa_and_ed25519_signatures_each_verified(dns_server, auth):
    publish(dns_server.zone, "rsa1", "example.test", rsa_key())
    publish(dns_server.zone, "ed1", "esp.test", ed25519_key())
    raw = sign(message(), "rsa1", "example.test", rsa_key())
    raw = sign(raw, "ed1", "esp.test", ed25519_key())
    run = auth.run(context(raw))
    assert run.options("DKIM_PASS") == ("esp.test", "example.test")
    assert [(d.result, d.domain, d.algorithm) for d in run.evidence.dkim] == [
        ("pass", "esp.test", "ed25519-sha256"),
        ("pass", "example.test", "rsa-sha256"),
    ]
    assert "dkim=pass header.d=esp.test header.s=ed1 header.a=ed25519-sha256" in run.header
    assert "dkim=pass header.d=example.test header.s=rsa1 header.a=rsa-sha256" in run.header


def test_changed_body_fails(dns_server, auth):
    publish(dns_server.zone, "rsa1", "example.test", rsa_key())
    raw = sign(message(), "rsa1", "example.test", rsa_key()).replace(b"report", b"invoice")
    run = auth.run(context(raw))
    assert run.options("DKIM_FAIL") == ("example.test",)
    assert "body hash mismatch" in run.evidence.dkim[0].reason


def test_changed_signed_header_fails(dns_server, auth):
    publish(dns_server.zone, "ed1", "example.test", ed25519_key())
    raw = sign(message(), "ed1", "example.test", ed25519_key())
    raw = raw.replace(b"Subject: quarterly report", b"Subject: urgent payment")
    run = auth.run(context(raw))
    assert "DKIM_FAIL" in run.names


def test_one_good_one_bad_signature_gives_both_symbols(dns_server, auth):
    publish(dns_server.zone, "rsa1", "example.test", rsa_key())
    raw = sign(message(), "rsa1", "example.test", rsa_key())
    raw = sign(raw, "gone", "other.test", ed25519_key())  # key never published
    run = auth.run(context(raw))
    assert run.options("DKIM_PASS") == ("example.test",)
    assert run.options("DKIM_PERMERROR") == ("other.test",)


def test_key_lookup_failure_is_temperror_not_fail(dns_server, auth):
    dns_server.zone.fail("rsa1._domainkey.example.test")
    raw = sign(message(), "rsa1", "example.test", rsa_key())
    run = auth.run(context(raw))
    assert run.options("DKIM_TEMPERROR") == ("example.test",)
    assert "dkim=temperror" in run.header


@pytest.mark.parametrize(
    "record",
    [
        "v=DKIM1; k=rsa; p=",  # revoked
        "v=DKIM1; k=rsa; p=not*base64",
        "v=DKIM1; k=dsa; p=AAAA",
        "v=DKIM1; p=" + "A" * 6000,  # huge TXT record, garbage key
    ],
)
def test_bad_keys_are_permerror(dns_server, auth, record):
    dns_server.zone.add("rsa1._domainkey.example.test", "TXT", record)
    raw = sign(message(), "rsa1", "example.test", rsa_key())
    run = auth.run(context(raw))
    assert run.options("DKIM_PERMERROR") == ("example.test",)


def test_small_rsa_key_and_rsa_sha1_are_not_accepted(dns_server, auth):
    small = rsa_key(768)
    publish(dns_server.zone, "small", "example.test", small)
    publish(dns_server.zone, "rsa1", "sha1.test", rsa_key())
    raw = sign(message(), "small", "example.test", small)
    raw = sign(raw, "rsa1", "sha1.test", with_algorithm(rsa_key(), b"rsa-sha1"))
    run = auth.run(context(raw))
    assert set(run.options("DKIM_PERMERROR")) == {"example.test", "sha1.test"}
    assert "DKIM_PASS" not in run.names


MALFORMED = [
    b"DKIM-Signature: garbage\r\n",
    b"DKIM-Signature: v=1; a=rsa-sha256; d=example.test; s=rsa1\r\n",  # no b=, bh=, h=
    b"DKIM-Signature: v=1; a=rsa-sha256; d=example.test; s=rsa1; h=from; bh=!!; b=%%\r\n",
    b"DKIM-Signature: v=1; a=rsa-sha256; d=ex(am)ple;; s=rsa1; h=from; bh=AAAA; b=AAAA\r\n",
    b"DKIM-Signature: v=1; a=foo-sha999; d=example.test; s=rsa1; h=from; bh=AAAA; b=AAAA\r\n",
    b"DKIM-Signature: v=1; a=rsa-sha256; d=example.test; s=rsa1; h=to; bh=AAAA; b=AAAA\r\n",
    b"DKIM-Signature: v=1; a=rsa-sha256; d=\xc3\xa9.test; s=s\xff; h=from; bh=AAAA; b=AAAA\r\n",
    b"DKIM-Signature: v=1; a=rsa-sha256; d=example.test; s=rsa1; h=from; bh=AAAA; b=AAAA;"
    b" c=weird/odd; l=x\r\n",
    b"DKIM-Signature: v=1; a=rsa-sha256; d=example.test; s=rsa1; h=from; bh=AAAA; b=AAAA;"
    b" x=12\r\n",  # expired long ago
]


@pytest.mark.parametrize("header", MALFORMED, ids=range(len(MALFORMED)))
def test_malformed_signature_headers_are_permerror(dns_server, auth, header):
    publish(dns_server.zone, "rsa1", "example.test", rsa_key())
    run = auth.run(context(header + message()))
    assert [d.result for d in run.evidence.dkim] == ["permerror"]
    assert "DKIM_PERMERROR" in run.names
    assert "dkim=permerror" in run.header
    assert "\r" not in run.header and "\n" not in run.header


def test_only_ten_signatures_are_checked(dns_server, auth):
    publish(dns_server.zone, "rsa1", "example.test", rsa_key())
    raw = message()
    for _ in range(12):
        raw = sign(raw, "rsa1", "example.test", rsa_key())
    run = auth.run(context(raw))
    results = [d.result for d in run.evidence.dkim]
    assert results == ["pass"] * 10 + ["permerror"] * 2
    key_queries = [q for q in dns_server.zone.queries if q[0].startswith("rsa1._domainkey")]
    assert len(key_queries) == 10


def test_unsigned_message_is_dkim_none(dns_server, auth):
    run = auth.run(context(message()))
    assert "DKIM_NONE" in run.names
    assert re.search(r"; dkim=none;", run.header)
