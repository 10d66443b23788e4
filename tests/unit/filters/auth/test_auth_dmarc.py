"""DMARC's pure parts: the From domain, record parsing, alignment, pct, the verdict,
and the filter's evaluate() with literal evidence (the forced action per domain mode)."""

from __future__ import annotations

import datetime

import pytest

from filters.auth import AuthEvidence, AuthFilter
from filters.auth.dkimcheck import ArcOutcome, DkimOutcome
from filters.auth.dmarc import DmarcLookup, from_domain, parse_record, sampled, verdict
from filters.auth.domains import aligned, ascii_domain, org_domain
from filters.auth.spfcheck import SpfOutcome
from filters.base import Scope
from gateway.domain_policy import DomainPolicy
from gateway.model import Envelope, ForceKind, MessageContext


@pytest.mark.parametrize(
    ("values", "status", "domain"),
    [
        (["Alice <alice@Example.TEST>"], "ok", "example.test"),
        (["a@example.test, B <b@example.test>"], "ok", "example.test"),
        (["a@example.test, b@other.test"], "multiple", ""),
        (["a@example.test", "b@example.test"], "multiple", ""),
        ([], "missing", ""),
        (["undisclosed-recipients:;"], "missing", ""),
        ([""], "missing", ""),
        (["x@-bad-.test"], "invalid", ""),
        (["x@localhost"], "invalid", ""),
        (["Anna <anna@b\udcc3\udcbccher.example>"], "ok", "xn--bcher-kva.example"),
        (["=?utf-8?q?a=40bank.test?= <x@example.test>"], "ok", "example.test"),
        (['"a@bank.test" <x@example.test>'], "ok", "example.test"),
        (["x@example.test\r\n (folded comment)"], "ok", "example.test"),
    ],
)
def test_from_domain(values, status, domain):
    found = from_domain(values)
    assert (found.status, found.domain) == (status, domain)


def test_record_parsing():
    r = parse_record("v=DMARC1; p=Reject; sp=none; adkim=s; aspf=r; pct=30; rua=mailto:x@y")
    assert (r.p, r.sp, r.adkim, r.aspf, r.pct, r.error) == ("reject", "none", "s", "r", 30, "")
    assert parse_record("v=DMARC1; p=maybe").error
    assert parse_record("v=DMARC1").error
    assert parse_record("v=DMARC1; rua=mailto:d@example.test").p == "none"  # RFC 7489 6.6.3
    assert parse_record("v=DMARC1; p=reject; pct=250").pct == 100
    assert parse_record("v=DMARC1; p=reject; pct=x").pct == 100
    assert parse_record("v=DMARC1; p=reject; sp=bogus").sp is None
    assert parse_record("v=spf1 -all").error


def test_org_domain_and_alignment():
    assert org_domain("a.b.example.co.uk") == "example.co.uk"
    assert org_domain("co.uk") == "co.uk"
    assert org_domain("mail.example.test") == "example.test"
    assert aligned("mail.example.test", "example.test", "r")
    assert not aligned("mail.example.test", "example.test", "s")
    assert aligned("EXAMPLE.test.", "example.test", "s")
    assert not aligned("example.co.uk", "other.co.uk", "r")
    assert not aligned("", "example.test", "r")
    assert ascii_domain("Bücher.Example") == "xn--bcher-kva.example"
    assert ascii_domain("a" * 64 + ".test") is None


def test_pct_sampling_is_deterministic_and_proportional():
    keys = [f"<{i}@example.test>" for i in range(4000)]
    assert all(sampled(100, k) for k in keys[:50])
    assert not any(sampled(0, k) for k in keys[:50])
    share = sum(sampled(25, k) for k in keys) / len(keys)
    assert 0.22 < share < 0.28
    assert [sampled(25, k) for k in keys[:100]] == [sampled(25, k) for k in keys[:100]]


SPF_FAIL = SpfOutcome("fail", "mailfrom", "example.test", "a@example.test")
SPF_PASS = SpfOutcome("pass", "mailfrom", "example.test", "a@example.test")
FOUND = DmarcLookup("found", parse_record("v=DMARC1; p=reject"), "example.test")


def test_verdict_alignment_and_temperror():
    ok = from_domain(["a@example.test"])
    assert verdict(ok, FOUND, SPF_PASS, (), "k").result == "pass"
    v = verdict(ok, FOUND, SPF_FAIL, (), "k")
    assert (v.result, v.policy) == ("fail", "reject")
    other = (DkimOutcome("pass", "other.test"),)
    assert verdict(ok, FOUND, SPF_FAIL, other, "k").result == "fail"
    pending = (DkimOutcome("temperror", "example.test"),)
    assert verdict(ok, FOUND, SPF_FAIL, pending, "k").result == "temperror"
    unrelated = (DkimOutcome("temperror", "other.test"),)
    assert verdict(ok, FOUND, SPF_FAIL, unrelated, "k").result == "fail"


def _ctx() -> MessageContext:
    raw = b"From: a@example.test\r\nMessage-ID: <1@example.test>\r\n\r\nhi\r\n"
    env = Envelope("a@example.test", ("b@local.test",), "203.0.113.5", "mail.example.test")
    return MessageContext("Q", env, raw, datetime.datetime.now(datetime.UTC))


def _evidence(lookup: DmarcLookup) -> AuthEvidence:
    return AuthEvidence(
        spf=SPF_FAIL,
        helo=None,
        dkim=(),
        arc=ArcOutcome("none"),
        sender=from_domain(["a@example.test"]),
        dmarc=lookup,
    )


@pytest.mark.parametrize(
    ("record", "mode", "kind"),
    [
        ("v=DMARC1; p=reject", "honour", ForceKind.REJECT),
        ("v=DMARC1; p=reject", "quarantine", ForceKind.QUARANTINE),
        ("v=DMARC1; p=reject", "score", None),
        ("v=DMARC1; p=quarantine", "honour", ForceKind.QUARANTINE),
        ("v=DMARC1; p=quarantine", "score", None),
        ("v=DMARC1; p=none", "honour", None),
        ("v=DMARC1; p=reject", "unknown-mode", ForceKind.REJECT),
    ],
)
def test_evaluate_forces_per_domain_mode(record, mode, kind):
    lookup = DmarcLookup("found", parse_record(record), "example.test")
    f = AuthFilter("mx.local.test")
    result = f.evaluate(
        _ctx(), _evidence(lookup), Scope("local.test", DomainPolicy("local.test", dmarc=mode))
    )
    assert (result.force.kind if result.force else None) == kind
    assert result.facts["dmarc"] == "fail"
    name, value = result.headers[0]
    assert name == "Authentication-Results" and value.startswith("mx.local.test; spf=fail")
