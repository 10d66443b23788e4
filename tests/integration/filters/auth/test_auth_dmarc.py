"""DMARC through the auth filter: records, alignment, policies and the forced action."""

from __future__ import annotations

import pytest

from gateway.model import ForceKind
from tests.support.authrun import AuthHarness
from tests.support.mailauth import context, ed25519_key, message, publish, rsa_key, sign


@pytest.fixture
def auth(dns_server):
    return AuthHarness(dns_server.nameserver)


@pytest.fixture
def zone(dns_server):
    z = dns_server.zone
    z.add("example.test", "TXT", "v=spf1 ip4:192.0.2.10 -all")
    publish(z, "rsa1", "example.test", rsa_key())
    publish(z, "ed1", "mail.example.test", ed25519_key())
    return z


FORGED_IP = "203.0.113.66"


def test_pass_through_relaxed_dkim_alignment(zone, auth):
    zone.add("_dmarc.example.test", "TXT", "v=DMARC1; p=reject")
    raw = sign(message(), "ed1", "mail.example.test", ed25519_key())
    run = auth.run(context(raw, client_ip=FORGED_IP))  # SPF fails, DKIM of a subdomain passes
    assert {"SPF_FAIL", "DKIM_PASS", "DMARC_PASS"} <= run.names
    assert run.result.force is None
    assert "dmarc=pass (p=reject dis=none) header.from=example.test" in run.header


def test_pass_through_spf_alignment_alone(zone, auth):
    zone.add("_dmarc.example.test", "TXT", "v=DMARC1; p=reject")
    run = auth.run(context(message()))
    assert {"SPF_PASS", "DKIM_NONE", "DMARC_PASS"} <= run.names


def test_strict_dkim_alignment_rejects_a_subdomain_signature(zone, auth):
    zone.add("_dmarc.example.test", "TXT", "v=DMARC1; p=reject; adkim=s")
    raw = sign(message(), "ed1", "mail.example.test", ed25519_key())
    run = auth.run(context(raw, client_ip=FORGED_IP))
    assert "DMARC_REJECT" in run.names


def test_strict_spf_alignment(zone, auth):
    zone.add("_dmarc.example.test", "TXT", "v=DMARC1; p=quarantine; aspf=s")
    zone.add("bounces.example.test", "TXT", "v=spf1 ip4:192.0.2.10 -all")
    run = auth.run(context(message(), mail_from="b@bounces.example.test"))
    assert {"SPF_PASS", "DMARC_QUARANTINE"} <= run.names


@pytest.mark.parametrize(
    ("mode", "kind", "disposition"),
    [
        ("honour", ForceKind.REJECT, "reject"),
        ("quarantine", ForceKind.QUARANTINE, "quarantine"),
        ("score", None, "none"),
    ],
)
def test_reject_policy_per_domain_mode(zone, auth, mode, kind, disposition):
    zone.add("_dmarc.example.test", "TXT", "v=DMARC1; p=reject; rua=mailto:d@example.test")
    run = auth.run(context(message(), client_ip=FORGED_IP), dmarc=mode)
    assert run.options("DMARC_REJECT") == ("example.test", "p=reject")
    force = run.result.force
    assert (force.kind if force else None) == kind
    if kind is ForceKind.REJECT:
        assert "DMARC policy of example.test" in force.reply_text
    assert f"dmarc=fail (p=reject dis={disposition}) header.from=example.test" in run.header


def test_quarantine_and_none_policies(zone, auth):
    zone.add("_dmarc.example.test", "TXT", "v=DMARC1; p=quarantine")
    run = auth.run(context(message(), client_ip=FORGED_IP))
    assert "DMARC_QUARANTINE" in run.names
    assert run.result.force.kind is ForceKind.QUARANTINE

    zone.clear("_dmarc.example.test")
    zone.add("_dmarc.example.test", "TXT", "v=DMARC1; p=none")
    run = auth.run(context(message(), client_ip=FORGED_IP))
    assert "DMARC_FAIL_NONE" in run.names
    assert run.result.force is None


def test_organizational_domain_record_and_sp(zone, auth):
    zone.add("_dmarc.example.test", "TXT", "v=DMARC1; p=reject; sp=quarantine")
    zone.add("news.example.test", "TXT", "v=spf1 -all")
    raw = message(from_header="News <news@news.example.test>")
    run = auth.run(context(raw, mail_from="news@news.example.test"))
    assert run.options("DMARC_QUARANTINE") == ("news.example.test", "p=quarantine")
    assert ("_dmarc.news.example.test", "TXT") in zone.queries
    assert ("_dmarc.example.test", "TXT") in zone.queries


def test_public_suffix_list_finds_the_organizational_domain(dns_server, auth):
    zone = dns_server.zone
    zone.add("_dmarc.bank.co.uk", "TXT", "v=DMARC1; p=reject")
    raw = message(from_header="<alerts@secure.mail.bank.co.uk>")
    run = auth.run(context(raw, mail_from="x@attacker.test"))
    assert "DMARC_REJECT" in run.names
    asked = [q[0] for q in zone.queries if q[0].startswith("_dmarc.")]
    assert asked == ["_dmarc.secure.mail.bank.co.uk", "_dmarc.bank.co.uk"]  # never _dmarc.co.uk


def test_pct_zero_steps_reject_down_to_quarantine(zone, auth):
    zone.add("_dmarc.example.test", "TXT", "v=DMARC1; p=reject; pct=0")
    run = auth.run(context(message(), client_ip=FORGED_IP))
    assert run.options("DMARC_QUARANTINE") == ("example.test", "p=reject", "pct")
    assert run.result.force.kind is ForceKind.QUARANTINE


def test_no_record_and_broken_records(zone, auth):
    run = auth.run(context(message(), client_ip=FORGED_IP))
    assert "DMARC_NONE" in run.names
    zone.add("_dmarc.example.test", "TXT", "v=DMARC1; p=bogus")
    run = auth.run(context(message(), client_ip=FORGED_IP))
    assert "DMARC_PERMERROR" in run.names
    assert run.result.force is None


def test_two_records_mean_no_policy(zone, auth):
    zone.add("_dmarc.example.test", "TXT", "v=DMARC1; p=reject")
    zone.add("_dmarc.example.test", "TXT", "v=DMARC1; p=none")
    run = auth.run(context(message(), client_ip=FORGED_IP))
    assert "DMARC_NONE" in run.names
    assert run.result.force is None


def test_record_lookup_failure_is_temperror(zone, auth):
    zone.fail("_dmarc.example.test")
    run = auth.run(context(message(), client_ip=FORGED_IP))
    assert "DMARC_TEMPERROR" in run.names
    assert run.result.force is None


def test_dkim_key_timeout_never_turns_into_a_reject(zone, auth):
    zone.add("_dmarc.example.test", "TXT", "v=DMARC1; p=reject")
    zone.fail("rsa1._domainkey.example.test")
    raw = sign(message(), "rsa1", "example.test", rsa_key())
    run = auth.run(context(raw, client_ip=FORGED_IP))
    assert {"SPF_FAIL", "DKIM_TEMPERROR", "DMARC_TEMPERROR"} <= run.names
    assert run.result.force is None


@pytest.mark.parametrize(
    ("from_header", "symbol"),
    [
        ("a@example.test, b@other.test", "DMARC_PERMERROR"),
        ("undisclosed-recipients:;", "DMARC_NONE"),
        ("Just A Name", "DMARC_NONE"),
        (None, "DMARC_NONE"),
        ("x@exa mple..test", "DMARC_PERMERROR"),
        ("=?utf-8?q?bob=40example.test=2C_eve=40other.test?= <eve@example.test>", "DMARC_REJECT"),
    ],
)
def test_unusual_from_headers(zone, auth, from_header, symbol):
    zone.add("_dmarc.example.test", "TXT", "v=DMARC1; p=reject")
    run = auth.run(context(message(from_header=from_header), client_ip=FORGED_IP))
    assert symbol in run.names
    assert "Authentication-Results" in dict(run.result.headers)


def test_two_from_headers_are_permerror(zone, auth):
    raw = message(extra="From: mallory@other.test\r\n")
    run = auth.run(context(raw))
    assert "DMARC_PERMERROR" in run.names


def test_same_domain_addresses_are_evaluated(zone, auth):
    zone.add("_dmarc.example.test", "TXT", "v=DMARC1; p=reject")
    run = auth.run(context(message(from_header="a@example.test, b@EXAMPLE.test")))
    assert "DMARC_PASS" in run.names


def test_non_ascii_from_domain(dns_server, auth):
    zone = dns_server.zone
    zone.add("_dmarc.xn--bcher-kva.example", "TXT", "v=DMARC1; p=reject")
    raw = "From: Anna <anna@bücher.example>\r\nSubject: x\r\n\r\nhi\r\n".encode()
    run = auth.run(context(raw, mail_from="anna@bücher.example"))
    assert run.options("DMARC_REJECT") == ("xn--bcher-kva.example", "p=reject")
