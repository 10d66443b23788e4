"""DNSBL and URIBL lookups against the loopback DNS server, cached in-process and in
the real Redis."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import pytest
import redis
import redis.asyncio as aioredis

from filters.base import Scope
from filters.blocklist import cache as dnsbl_cache
from filters.blocklist.dnsbl import BlocklistFilter
from filters.blocklist.session import BlocklistSessionCheck
from filters.session import SessionInfo
from gateway.adapters import Ports
from gateway.adapters.dns import Resolver
from gateway.config import settings_from_dict
from gateway.domain_policy import DomainPolicy
from gateway.model import Envelope, MessageContext

ZEN = "zen.bl.test"
DBL = "dbl.uribl.test"


def make_settings(dns_server, redis_target=None, **blocklist):
    data = {
        "domains": {"accept": ["example.test"]},
        "dns": {"nameservers": [dns_server.nameserver], "timeout": 1.0},
        "dnsbl": [
            {
                "zone": ZEN,
                "weight": 3.0,
                "codes": {
                    "127.0.0.2": {"meaning": "spam source", "weight": 6.0, "reject": True},
                    "127.0.0.10": {"meaning": "dynamic range", "weight": 1.5},
                },
            }
        ],
        "uribl": [{"zone": DBL, "weight": 4.0, "codes": {"127.0.1.2": {"meaning": "spam domain"}}}],
        "blocklist": {"check_private": True, **blocklist},
    }
    if redis_target is not None:
        data["redis"] = {"url": redis_target.url, "prefix": redis_target.prefix}
    return settings_from_dict(data)


@pytest.fixture(autouse=True)
def fresh_local_cache():
    """Each test starts with an empty in-process answer cache."""
    dnsbl_cache._local = None
    yield
    dnsbl_cache._local = None


def ctx_for(ip: str, body: str = "hello\n", html: str | None = None) -> MessageContext:
    if html is None:
        raw = (f"From: a@sender.test\r\nSubject: hi\r\n\r\n{body}").encode()
    else:
        raw = (
            "From: a@sender.test\r\nSubject: hi\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/html; charset=utf-8\r\n\r\n" + html
        ).encode()
    env = Envelope("a@sender.test", ("bob@example.test",), ip, "mx.sender.test")
    return MessageContext("q", env, raw, datetime.now(UTC))


def run_filter(settings, ctx, redis_url: str | None = None, **redis_options):
    """The filter's lookup and evaluation, with a Redis client of its own when given a URL
    (a fresh client is what another gateway node would have)."""

    async def run():
        client = aioredis.from_url(redis_url, **redis_options) if redis_url else None
        try:
            filt = BlocklistFilter(settings)
            evidence = await filt.lookup(ctx, Ports(dns=Resolver(settings.dns), redis=client))
        finally:
            if client is not None:
                await client.aclose()
        return filt.evaluate(ctx, evidence, Scope("example.test", DomainPolicy("example.test")))

    return asyncio.run(run())


def symbols(result) -> list[tuple[str, tuple, float]]:
    return [(s.name, s.options, s.factor) for s in result.symbols]


def test_dnsbl_ipv4_codes_mean_what_the_operator_configured(dns_server):
    dns_server.zone.add(f"7.2.0.192.{ZEN}", "A", "127.0.0.2")
    dns_server.zone.add(f"7.2.0.192.{ZEN}", "A", "127.0.0.10")
    dns_server.zone.add(f"8.2.0.192.{ZEN}", "A", "127.0.0.4")  # a code without an entry
    settings = make_settings(dns_server)
    result = run_filter(settings, ctx_for("192.0.2.7"))
    assert sorted(symbols(result)) == [
        ("DNSBL_LISTED", (ZEN, "dynamic range", "127.0.0.10"), 1.5),
        ("DNSBL_LISTED", (ZEN, "spam source", "127.0.0.2"), 6.0),
    ]
    assert result.facts["client_ip"] == "192.0.2.7"
    other = run_filter(settings, ctx_for("192.0.2.8"))
    assert symbols(other) == [("DNSBL_LISTED", (ZEN, "listed", "127.0.0.4"), 3.0)]
    assert symbols(run_filter(settings, ctx_for("192.0.2.9"))) == []


def test_dnsbl_ipv6_uses_reversed_nibbles(dns_server):
    name = "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2"
    dns_server.zone.add(f"{name}.{ZEN}", "A", "127.0.0.2")
    result = run_filter(make_settings(dns_server), ctx_for("2001:db8::1"))
    assert [s.name for s in result.symbols] == ["DNSBL_LISTED"]
    assert (f"{name}.{ZEN}", "A") in dns_server.zone.queries


def test_error_codes_and_non_loopback_answers_are_not_listings(dns_server):
    dns_server.zone.add(f"7.2.0.192.{ZEN}", "A", "127.255.255.254")  # "query refused"
    dns_server.zone.add(f"8.2.0.192.{ZEN}", "A", "192.0.2.1")  # a wildcard gone wrong
    settings = make_settings(dns_server)
    assert symbols(run_filter(settings, ctx_for("192.0.2.7"))) == []
    assert symbols(run_filter(settings, ctx_for("192.0.2.8"))) == []


def test_private_addresses_are_not_sent_to_public_lists(dns_server):
    settings = make_settings(dns_server, check_private=False)
    result = run_filter(settings, ctx_for("10.1.2.3"))
    assert result.facts["client_ip"] is None
    assert not any(ZEN in name for name, _ in dns_server.zone.queries)


def test_uribl_on_registered_domains_of_text_urls_and_html_links(dns_server):
    dns_server.zone.add(f"spam.co.uk.{DBL}", "A", "127.0.1.2")
    dns_server.zone.add(f"hidden.test.{DBL}", "A", "127.0.1.2")
    dns_server.zone.add(f"4.3.2.1.{DBL}", "A", "127.0.0.2")
    html = (
        '<p>Visit <a href="https://www.shop.spam.co.uk/buy">our shop</a>, '
        '<a href="//hidden.test/x">here</a>, <a href="http://1.2.3.4/y">there</a> '
        'and <a href="mailto:x@clean.test">mail us</a></p> http://clean.test/'
    )
    result = run_filter(make_settings(dns_server), ctx_for("192.0.2.9", html=html))
    assert set(result.facts["uri_domains"]) == {
        "spam.co.uk",
        "hidden.test",
        "4.3.2.1",
        "clean.test",
    }
    uribl = [s for s in result.symbols if s.name == "URIBL_LISTED"]
    assert len(uribl) == 2
    by_meaning = {s.options[1]: s for s in uribl}
    assert set(by_meaning["spam domain"].options[2:]) == {"spam.co.uk", "hidden.test"}
    assert by_meaning["spam domain"].factor == 4.0
    assert by_meaning["listed"].options[2:] == ("4.3.2.1",)


def test_uri_domains_per_message_are_limited(dns_server):
    body = " ".join(f"http://d{i}.test/" for i in range(30))
    result = run_filter(make_settings(dns_server, max_uri_domains=5), ctx_for("10.0.0.1", body))
    assert result.facts["uri_domains"] == [f"d{i}.test" for i in range(5)]


def test_slow_list_times_out_and_budget_is_kept(dns_server):
    dns_server.zone.add(f"7.2.0.192.{ZEN}", "A", "127.0.0.2")
    dns_server.zone.slow(f"7.2.0.192.{ZEN}", 3.0)
    dns_server.zone.fail(f"slow.test.{DBL}")
    settings = make_settings(dns_server, budget=0.6)
    started = time.monotonic()
    result = run_filter(settings, ctx_for("192.0.2.7", "http://slow.test/"))
    assert time.monotonic() - started < 1.5
    names = sorted(s.name for s in result.symbols)
    assert names == ["DNSBL_LOOKUP_FAILED", "URIBL_LOOKUP_FAILED"]
    reasons = {f["kind"]: f["reason"] for f in result.facts["failures"]}
    assert "budget" in reasons["dnsbl"]
    assert "SERV" in reasons["uribl"] or "no server" in reasons["uribl"]


def test_answers_are_cached_in_process(dns_server):
    dns_server.zone.add(f"7.2.0.192.{ZEN}", "A", "127.0.0.2")
    settings = make_settings(dns_server)
    run_filter(settings, ctx_for("192.0.2.7"))
    run_filter(settings, ctx_for("192.0.2.9"))  # not listed: cached as such
    asked = len(dns_server.zone.queries)
    again = run_filter(settings, ctx_for("192.0.2.7"))
    run_filter(settings, ctx_for("192.0.2.9"))
    assert len(dns_server.zone.queries) == asked
    assert [s.name for s in again.symbols] == ["DNSBL_LISTED"]


def test_answers_are_cached_in_redis_with_their_ttl(dns_server, redis_target):
    dns_server.zone.add(f"7.2.0.192.{ZEN}", "A", "127.0.0.2")  # the server's TTL is 60
    settings = make_settings(dns_server, redis_target, negative_ttl=120)

    async def lookups():
        client = aioredis.from_url(redis_target.url)
        try:
            filt = BlocklistFilter(settings)
            ports = Ports(dns=Resolver(settings.dns), redis=client)
            await filt.lookup(ctx_for("192.0.2.7"), ports)
            await filt.lookup(ctx_for("192.0.2.9"), ports)
        finally:
            await client.aclose()

    asyncio.run(lookups())
    sync = redis.Redis.from_url(redis_target.url)
    listed = f"{redis_target.prefix}dnsbl:7.2.0.192.{ZEN}"
    clean = f"{redis_target.prefix}dnsbl:9.2.0.192.{ZEN}"
    assert sync.get(listed) == b'["127.0.0.2"]'
    assert 0 < sync.ttl(listed) <= 60
    assert sync.get(clean) == b"[]"
    assert 60 < sync.ttl(clean) <= 120
    # another node (a new client, no local cache) answers from Redis without asking DNS
    asked = len(dns_server.zone.queries)
    dnsbl_cache._local = None

    result = run_filter(settings, ctx_for("192.0.2.7"), redis_target.url)
    assert len(dns_server.zone.queries) == asked
    assert [s.name for s in result.symbols] == ["DNSBL_LISTED"]
    sync.close()


def test_rcpt_check_rejects_on_a_rejecting_code_naming_the_list(dns_server):
    dns_server.zone.add(f"7.2.0.192.{ZEN}", "A", "127.0.0.2")
    dns_server.zone.add(f"8.2.0.192.{ZEN}", "A", "127.0.0.10")  # listed, but not rejecting
    settings = make_settings(dns_server)
    check = BlocklistSessionCheck(settings, Ports(dns=Resolver(settings.dns)))

    async def dialogue(ip: str, rcpt: str):
        info = SessionInfo(client_ip=ip, helo="mx.sender.test")
        assert await check.check_connect(info) is None
        assert await check.check_mail(info, "a@sender.test") is None
        return await check.check_rcpt(info, "a@sender.test", rcpt)

    reply = asyncio.run(dialogue("192.0.2.7", "bob@example.test"))
    assert (reply.code, reply.status) == (550, "5.7.1")
    assert ZEN in reply.text and "spam source" in reply.text and "192.0.2.7" in reply.text
    assert asyncio.run(dialogue("192.0.2.7", "abuse@example.test")) is None
    assert asyncio.run(dialogue("192.0.2.7", "Postmaster@example.test")) is None
    assert asyncio.run(dialogue("192.0.2.8", "bob@example.test")) is None


def test_rcpt_check_fails_open_when_the_list_is_slow(dns_server):
    dns_server.zone.add(f"7.2.0.192.{ZEN}", "A", "127.0.0.2")
    dns_server.zone.slow(f"7.2.0.192.{ZEN}", 3.0)
    settings = make_settings(dns_server, budget=0.5)
    check = BlocklistSessionCheck(settings, Ports(dns=Resolver(settings.dns)))
    info = SessionInfo(client_ip="192.0.2.7", helo="x")
    assert asyncio.run(check.check_rcpt(info, "", "bob@example.test")) is None


def test_an_unreachable_redis_costs_the_cache_not_the_lookup(dns_server):
    """Redis down: every answer is a cache miss and the lists are still asked."""
    from tests.support.smtp_sink import free_port

    dns_server.zone.add(f"7.2.0.192.{ZEN}", "A", "127.0.0.2")
    settings = make_settings(dns_server)

    unreachable = f"redis://127.0.0.1:{free_port()}/0"
    result = run_filter(settings, ctx_for("192.0.2.7"), unreachable, socket_timeout=1)
    assert [s.name for s in result.symbols] == ["DNSBL_LISTED"]
