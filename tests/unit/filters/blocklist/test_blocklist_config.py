"""Blocklist settings: mistakes are one-line ConfigErrors naming the key."""

from __future__ import annotations

import pytest

from filters.blocklist.dnsbl import ZoneAnswer, interpret, reversed_ip, uri_query_target
from gateway.config import ConfigError, settings_from_dict


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"dnsbl": [{"zone": "zen"}]}, "dnsbl.0.zone: 'zen' is not a DNS zone name"),
        (
            {"dnsbl": [{"zone": "zen.bl.test", "codes": {"10.0.0.1": {"meaning": "x"}}}]},
            "return code 10.0.0.1 is outside 127.0.0.0/8",
        ),
        (
            {"uribl": [{"zone": "a.test", "codes": {"127.0.0.2": {"meaning": "caf\u00e9"}}}]},
            "uribl.0.codes.127.0.0.2.meaning: meaning must be short plain ASCII",
        ),
        ({"dnsbl": [{"zone": "a.test", "weigth": 1}]}, "dnsbl.0.weigth: unknown key"),
        ({"blocklist": {"budget": 0}}, "blocklist.budget"),
        ({"rules": {"reload_interval": -1}}, "rules.reload_interval"),
    ],
)
def test_bad_blocklist_settings(data, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("(", r"\(")):
        settings_from_dict(data)


def test_zone_names_are_normalised_and_codes_interpreted():
    settings = settings_from_dict(
        {
            "dnsbl": [
                {
                    "zone": "ZEN.BL.test.",
                    "reject": False,
                    "codes": {"127.0.0.2": {"meaning": "sbl", "reject": True}},
                }
            ]
        }
    )
    zone = settings.dnsbl[0]
    assert zone.zone == "zen.bl.test"
    listings = interpret(zone, ZoneAnswer(zone.zone, "7.2.0.192", ("127.0.0.2", "127.0.0.3")))
    assert [(x.meaning, x.weight, x.reject) for x in listings] == [
        ("sbl", 5.0, True),
        ("listed", 5.0, False),
    ]


def test_query_names():
    assert reversed_ip("192.0.2.7") == "7.2.0.192"
    assert reversed_ip("::ffff:192.0.2.7") == "7.2.0.192"
    assert reversed_ip("2001:db8::1") == ".".join(reversed("20010db8" + "0" * 23 + "1"))
    assert reversed_ip("not-an-ip") is None
    assert uri_query_target("WWW.Shop.Example.CO.UK") == "example.co.uk"
    assert uri_query_target("10.1.2.3") == "3.2.1.10"
    assert uri_query_target("b\u00fccher.test") == "xn--bcher-kva.test"
    assert uri_query_target("co.uk") is None  # a public suffix alone names nobody
    assert uri_query_target("bad host.test") is None


def test_query_names_are_remembered_within_a_bound():
    """The answers stay the same when asked again, for thousands of hosts; at most 4,096
    are remembered, and never a host over 255 characters."""
    from filters.blocklist import dnsbl

    dnsbl._cached_target.cache_clear()
    hosts = [f"h.shop{i}.example" for i in range(5000)] + ["10.9.8.7", "co.uk"]
    first = [uri_query_target(h) for h in hosts]
    assert first[:2] == ["shop0.example", "shop1.example"] and first[-2:] == ["7.8.9.10", None]
    assert [uri_query_target(h) for h in hosts] == first
    assert dnsbl._cached_target.cache_info().currsize == 4096
    dnsbl._cached_target.cache_clear()
    assert uri_query_target("a" * 300 + ".example.test") == "example.test"
    assert dnsbl._cached_target.cache_info().currsize == 0
