"""Local list entries: parsing values, matching, precedence, expiry; published list files."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.lists.importer import parse_list_file
from gateway.lists.match import Entry, ListSnapshot, parse_value

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def entry(list_name: str, value: str, domain: str = "", kind: str | None = None, **kw) -> Entry:
    kind, value = parse_value(value, kind)
    return Entry(list=list_name, kind=kind, value=value, domain=domain, **kw)


@pytest.mark.parametrize(
    ("text", "kind", "expected"),
    [
        ("192.0.2.7", None, ("ip", "192.0.2.7")),
        ("::ffff:192.0.2.7", None, ("ip", "192.0.2.7")),
        ("2001:DB8::1", None, ("ip", "2001:db8::1")),
        ("192.0.2.9/24", None, ("cidr", "192.0.2.0/24")),
        ("2001:db8::/32", None, ("cidr", "2001:db8::/32")),
        ("Bob@Spam.TEST", None, ("sender", "bob@spam.test")),
        ("@spam.test", None, ("sender_domain", "spam.test")),
        ("Spam.Test.", None, ("sender_domain", "spam.test")),
        ("bücher.test", None, ("sender_domain", "xn--bcher-kva.test")),
        ("[192.0.2.1]", "helo", ("helo", "[192.0.2.1]")),
        ("PC-123.local", "helo", ("helo", "pc-123.local")),
    ],
)
def test_values_are_recognised_and_normalised(text, kind, expected):
    assert parse_value(text, kind) == expected


@pytest.mark.parametrize(
    ("text", "kind", "problem"),
    [
        ("300.1.2.3/8", None, "not a network"),
        ("not a domain", None, "not a domain name"),
        ("a b@x.test", None, "not an e-mail address"),
        ("x.test", "ip", "not an IP address"),
        ("", None, "empty"),
        ("x.test", "smell", "unknown kind"),
    ],
)
def test_bad_values_say_why(text, kind, problem):
    with pytest.raises(ValueError, match=problem):
        parse_value(text, kind)


def test_ip_network_sender_domain_and_helo_matching():
    snap = ListSnapshot(
        [
            entry("block", "192.0.2.0/24", reason="spam network"),
            entry("block", "2001:db8:bad::/48"),
            entry("block", "bob@x.test"),
            entry("block", "spam.test"),
            entry("block", "evil-helo", kind="helo"),
        ]
    )

    def blocked(**kw) -> str | None:
        verdict = snap.judge("example.test", NOW, **kw)
        return verdict.entry.value if verdict and verdict.list == "block" else None

    assert blocked(ip="192.0.2.200") == "192.0.2.0/24"
    assert blocked(ip="::ffff:192.0.2.1") == "192.0.2.0/24"
    assert blocked(ip="192.0.3.1") is None
    assert blocked(ip="2001:db8:bad:1::9") == "2001:db8:bad::/48"
    assert blocked(ip="2001:db8:0:1::9") is None
    assert blocked(sender="Bob@X.test") == "bob@x.test"
    assert blocked(sender="alice@x.test") is None
    assert blocked(sender="a@mx.spam.test") == "spam.test"  # subdomains are covered
    assert blocked(sender="a@notspam.test") is None
    assert blocked(helo="EVIL-HELO") == "evil-helo"
    assert blocked(ip="unknown", sender="", helo="") is None


def test_the_most_specific_network_is_reported():
    snap = ListSnapshot(
        [entry("block", "10.0.0.0/8", reason="wide"), entry("block", "10.1.2.3", reason="narrow")]
    )
    assert snap.judge("example.test", NOW, ip="10.1.2.3").entry.reason == "narrow"
    assert snap.judge("example.test", NOW, ip="10.9.9.9").entry.reason == "wide"


def test_domain_entries_come_before_global_and_allow_beats_block():
    snap = ListSnapshot(
        [
            entry("block", "192.0.2.0/24"),
            entry("allow", "192.0.2.7", domain="example.test"),
            entry("block", "partner.test", domain="other.test"),
            entry("allow", "partner.test"),
            entry("allow", "198.51.100.1"),
            entry("block", "198.51.100.1"),
        ]
    )
    assert snap.judge("example.test", NOW, ip="192.0.2.7").list == "allow"
    assert snap.judge("other.test", NOW, ip="192.0.2.7").list == "block"
    assert snap.judge("other.test", NOW, sender="a@partner.test").list == "block"
    assert snap.judge("example.test", NOW, sender="a@partner.test").list == "allow"
    assert snap.judge("example.test", NOW, ip="198.51.100.1").list == "allow"


def test_expired_entries_no_longer_match():
    snap = ListSnapshot(
        [
            entry("block", "192.0.2.1", expires_at=NOW - timedelta(seconds=1)),
            entry("block", "192.0.2.2", expires_at=NOW + timedelta(hours=1)),
        ]
    )
    assert snap.judge("example.test", NOW, ip="192.0.2.1") is None
    assert snap.judge("example.test", NOW, ip="192.0.2.2").list == "block"
    later = NOW + timedelta(hours=2)
    assert snap.judge("example.test", later, ip="192.0.2.2") is None


def test_many_networks_match_without_scanning_them_all():
    entries = [entry("block", f"10.{i // 256}.{i % 256}.0/24") for i in range(20_000)]
    snap = ListSnapshot(entries)
    assert snap.count == 20_000
    assert snap.judge("example.test", NOW, ip="10.70.15.9").entry.value == "10.70.15.0/24"
    assert snap.judge("example.test", NOW, ip="11.0.0.1") is None


def test_plain_text_list_with_comments_and_bad_lines():
    text = (
        "; Spamhaus DROP-style list\n"
        "192.0.2.0/24 ; SBL123\n"
        "198.51.100.7\n"
        "\n"
        "# a comment\n"
        "spam.test   # bulk sender\n"
        "999.1.1.1\n"
        "two values\n"
    )
    entries, bad = parse_list_file(Path("drop.txt"), text)
    assert entries == [
        ("cidr", "192.0.2.0/24", "SBL123"),
        ("ip", "198.51.100.7", ""),
        ("sender_domain", "spam.test", "bulk sender"),
    ]
    assert [(b.line, b.problem) for b in bad] == [
        (7, "'999.1.1.1' is not an IP address"),
        (8, "more than one value on the line"),
    ]


def test_csv_list_with_header_and_reasons():
    text = 'ip,reason\n192.0.2.1,"open relay, seen 2026-11"\n2001:db8::/32,\nnot-an-ip!,x\n'
    entries, bad = parse_list_file(Path("list.csv"), text)
    assert entries == [
        ("ip", "192.0.2.1", "open relay, seen 2026-11"),
        ("cidr", "2001:db8::/32", ""),
    ]
    assert [b.line for b in bad] == [4]
