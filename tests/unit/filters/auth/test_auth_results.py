"""Authentication-Results: spotting headers that claim our authserv-id, writing ours."""

from __future__ import annotations

import authres
import pytest

from filters.auth import authentication_results, claims_authserv_id, forged_results_dropper
from filters.auth.dkimcheck import ArcOutcome, DkimOutcome
from filters.auth.dmarc import DmarcVerdict
from filters.auth.spfcheck import SpfOutcome

ID = "mx.local.test"


@pytest.mark.parametrize(
    "value",
    [
        "mx.local.test; spf=pass smtp.mailfrom=a@example.test",
        "MX.Local.TEST; dkim=pass header.d=example.test",
        "mx.local.test.; none",
        " \t mx.local.test 1; spf=pass smtp.mailfrom=example.test",
        "mx.local.test(version next)1; none",
        "(forged by a friend) mx.local.test; spf=pass",
        "(nested (comment \\) here)) mx.local.test; dmarc=pass",
        "\r\n\tmx.local.test;\r\n\tspf=pass",
        '"mx.local.test"; spf=pass',
        '"mx.local\\.test"; spf=pass',
        "mx.local.test",
        "mx.local.test;spf=pass",
    ],
)
def test_claims_our_id(value):
    assert claims_authserv_id(value, ID)


@pytest.mark.parametrize(
    "value",
    [
        "mx.local.test.evil.test; spf=pass",
        "evil.mx.local.test; spf=pass",
        "mx.local.test1; spf=pass",
        "other.test; spf=pass (mx.local.test) smtp.mailfrom=mx.local.test",
        "(mx.local.test) other.test; spf=pass",
        "(unterminated mx.local.test; spf=pass",
        '"mx.local.test; spf=pass',
        "",
        "   ",
        "; mx.local.test",
        "mx.local.tes; none",
    ],
)
def test_does_not_claim_our_id(value):
    assert not claims_authserv_id(value, ID)


def test_case_of_our_configured_name_does_not_matter():
    assert claims_authserv_id("mx.local.test; none", "MX.LOCAL.TEST.")


def _header(**overrides) -> str:
    spf = overrides.get("spf", SpfOutcome("pass", "mailfrom", "example.test", "a@example.test"))
    dkim = overrides.get(
        "dkim",
        (DkimOutcome("pass", "example.test", "sel", "rsa-sha256", "", "AbCd1234"),),
    )
    dmarc = overrides.get("dmarc", DmarcVerdict("pass", "example.test", "none", "reject"))
    arc = overrides.get("arc", ArcOutcome("pass", "", 1))
    return authentication_results(ID, spf, dkim, dmarc, overrides.get("dis", "none"), arc)


def test_header_parses_as_rfc_8601():
    value = _header()
    parsed = authres.AuthenticationResultsHeader.parse_value(value)
    assert parsed.authserv_id == ID
    found = {(r.method, r.result) for r in parsed.results}
    assert found == {("spf", "pass"), ("dkim", "pass"), ("dmarc", "pass"), ("arc", "pass")}
    props = {(p.type, p.name): p.value for r in parsed.results for p in r.properties}
    assert props[("smtp", "mailfrom")] == "a@example.test"
    assert props[("header", "d")] == "example.test"
    assert props[("header", "from")] == "example.test"
    assert claims_authserv_id(value, ID)


def test_hostile_text_cannot_break_out_of_a_comment():
    evil = "x) dkim=pass header.d=bank.test; (\r\nX-Injected: yes\\"
    value = _header(
        spf=SpfOutcome("permerror", "mailfrom", "example.test", '"a;b"@example.test', evil),
        dkim=(DkimOutcome("permerror", "", "s;x=y", "rsa (sha)", evil, "AA;A"),),
        dmarc=DmarcVerdict("permerror", "", reason=evil),
    )
    assert "\r" not in value and "\n" not in value
    parsed = authres.AuthenticationResultsHeader.parse_value(value)
    results = [(r.method, r.result) for r in parsed.results]
    assert results == [
        ("spf", "permerror"),
        ("dkim", "permerror"),
        ("dmarc", "permerror"),
        ("arc", "pass"),
    ]
    assert "bank.test" not in [p.value for r in parsed.results for p in r.properties]
    assert "smtp.mailfrom=example.test" in value  # a quoted local part is left out


def test_unsigned_message_says_dkim_none():
    value = _header(dkim=(), arc=ArcOutcome("none"))
    assert "; dkim=none; " in value
    assert "arc=" not in value.replace("dmarc=", "")


def test_dmarc_failure_shows_policy_and_disposition():
    v = DmarcVerdict("fail", "example.test", "quarantine", "reject", sampled_out=True)
    value = _header(dmarc=v, dis="quarantine")
    assert "dmarc=fail (p=reject dis=quarantine pct) header.from=example.test" in value


def test_dropper_works_on_raw_folded_fields():
    drop = forged_results_dropper("mx.local.test")
    assert drop(b"Authentication-Results: (x)\r\n\tMX.local.test; spf=pass\r\n")
    assert drop(b"authentication-results :mx.local.test 1; none\r\n")
    assert not drop(b"Authentication-Results: other.test; spf=pass\r\n")
    assert not drop(b"ARC-Authentication-Results: i=1; mx.local.test; spf=pass\r\n")
    assert not drop(b"X-Note: mx.local.test; spf=pass\r\n")
    assert not drop(b"Authentication-Results mx.local.test\r\n")  # not a field
    assert drop(b"Authentication-Results: mx.local.test; x=\xff\xfe\r\n")
