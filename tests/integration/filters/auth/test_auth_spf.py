"""SPF through the auth filter against records served by the loopback DNS server."""

from __future__ import annotations

import pytest

from tests.support.authrun import AuthHarness
from tests.support.mailauth import context, message


@pytest.fixture
def auth(dns_server):
    return AuthHarness(dns_server.nameserver)


@pytest.mark.parametrize(
    ("record", "symbol"),
    [
        ("v=spf1 ip4:192.0.2.0/24 -all", "SPF_PASS"),
        ("v=spf1 ip4:198.51.100.1 -all", "SPF_FAIL"),
        ("v=spf1 ip4:198.51.100.1 ~all", "SPF_SOFTFAIL"),
        ("v=spf1 ?all", "SPF_NEUTRAL"),
        (None, "SPF_NONE"),
        ("v=spf1 ip4:192.0.2.0/24 frobnicate:x -all", "SPF_PERMERROR"),
    ],
)
def test_each_spf_result_is_its_own_symbol(dns_server, auth, record, symbol):
    if record:
        dns_server.zone.add("example.test", "TXT", record)
    run = auth.run(context(message()))
    spf_symbols = {n for n in run.names if n.startswith("SPF_") and "HELO" not in n}
    assert spf_symbols == {symbol}
    assert run.options(symbol) == ("example.test",)
    result = symbol.removeprefix("SPF_").lower()
    assert f"spf={result}" in run.header
    assert "smtp.mailfrom=alice@example.test" in run.header


def test_dns_failure_is_temperror(dns_server, auth):
    dns_server.zone.fail("example.test")
    run = auth.run(context(message()))
    assert "SPF_TEMPERROR" in run.names
    assert "spf=temperror" in run.header


def test_helo_is_checked_on_its_own(dns_server, auth):
    dns_server.zone.add("example.test", "TXT", "v=spf1 ip4:192.0.2.10 -all")
    dns_server.zone.add("mail.example.test", "TXT", "v=spf1 -all")
    run = auth.run(context(message()))
    assert {"SPF_PASS", "SPF_HELO_FAIL"} <= run.names
    assert run.options("SPF_HELO_FAIL") == ("mail.example.test",)


def test_null_sender_is_judged_by_helo(dns_server, auth):
    dns_server.zone.add("mail.example.test", "TXT", "v=spf1 a -all")
    dns_server.zone.add("mail.example.test", "A", "192.0.2.10")
    run = auth.run(context(message(), mail_from=""))
    assert "SPF_PASS" in run.names
    assert not any(n.startswith("SPF_HELO_") for n in run.names)
    assert "spf=pass smtp.helo=mail.example.test" in run.header


def test_helo_address_literal_is_none(dns_server, auth):
    run = auth.run(context(message(), mail_from="", helo="[192.0.2.10]"))
    assert "SPF_NONE" in run.names


def test_include_loop_is_permerror(dns_server, auth):
    zone = dns_server.zone
    zone.add("example.test", "TXT", "v=spf1 include:a.example.test -all")
    zone.add("a.example.test", "TXT", "v=spf1 include:b.example.test -all")
    zone.add("b.example.test", "TXT", "v=spf1 include:example.test -all")
    run = auth.run(context(message()))
    assert "SPF_PERMERROR" in run.names
    # the loop stopped at the lookup limit, it did not spin
    assert len([q for q in zone.queries if q[1] == "TXT"]) <= 12


def test_more_than_ten_lookups_is_permerror(dns_server, auth):
    zone = dns_server.zone
    mechanisms = " ".join(f"a:h{i}.example.test" for i in range(11))
    zone.add("example.test", "TXT", f"v=spf1 {mechanisms} ip4:192.0.2.10 -all")
    for i in range(11):
        zone.add(f"h{i}.example.test", "A", f"198.51.100.{i + 1}")
    run = auth.run(context(message()))
    assert "SPF_PERMERROR" in run.names
    assert "too many dns lookups" in run.header.lower()


def test_huge_txt_record_is_read_over_tcp(dns_server, auth):
    # 300 ip4 mechanisms: about 7 KB, far past a UDP answer; the pass is the last one
    nets = " ".join(f"ip4:198.51.{i // 250}.{i % 250}" for i in range(300))
    dns_server.zone.add("example.test", "TXT", f"v=spf1 {nets} ip4:192.0.2.10 -all")
    run = auth.run(context(message()))
    assert "SPF_PASS" in run.names


def test_non_ascii_sender_domain_is_checked_as_a_label(dns_server, auth):
    dns_server.zone.add("xn--bcher-kva.example", "TXT", "v=spf1 ip4:192.0.2.10 -all")
    run = auth.run(context(message(), mail_from="anna@bücher.example"))
    assert "SPF_PASS" in run.names
    assert run.options("SPF_PASS") == ("xn--bcher-kva.example",)


@pytest.mark.parametrize(
    "mail_from", ["x@exa mple.test", "x@-bad-.test", "x@a..test", "x@\udcff.test"]
)
def test_unusable_sender_domain_is_none(dns_server, auth, mail_from):
    run = auth.run(context(message(), mail_from=mail_from))
    assert "SPF_NONE" in run.names
    assert "spf=none" in run.header


def test_no_client_ip_is_none(dns_server, auth):
    dns_server.zone.add("example.test", "TXT", "v=spf1 -all")
    run = auth.run(context(message(), client_ip=""))
    assert "SPF_NONE" in run.names
