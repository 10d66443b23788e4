"""The DNS adapter against the loopback DNS server (real UDP/TCP queries)."""

from __future__ import annotations

import asyncio

import pytest

from gateway.adapters.dns import DnsError, NoRecord, Resolver
from gateway.config import DnsSettings


def resolver_for(server, timeout: float = 1.0) -> Resolver:
    return Resolver(DnsSettings(nameservers=[server.nameserver], timeout=timeout))


def test_txt_a_mx_and_long_txt(dns_server):
    zone = dns_server.zone
    zone.add("example.test", "TXT", "v=spf1 -all")
    zone.add("example.test", "A", "192.0.2.1")
    zone.add("example.test", "MX", (10, "mx.example.test"))
    zone.add("long.example.test", "TXT", "x" * 600)
    r = resolver_for(dns_server)

    async def run():
        assert await r.txt("example.test") == [b"v=spf1 -all"]
        assert await r.addresses("example.test") == ["192.0.2.1"]
        assert await r.mx("example.test") == [(10, "mx.example.test")]
        assert await r.txt("long.example.test") == [b"x" * 600]

    asyncio.run(run())


def test_nxdomain_nodata_and_timeout(dns_server):
    zone = dns_server.zone
    zone.add("a.example.test", "A", "192.0.2.1")
    zone.add("slow.example.test", "A", "192.0.2.2")
    zone.slow("slow.example.test", 2.0)
    r = resolver_for(dns_server, timeout=0.3)

    async def run():
        with pytest.raises(NoRecord):
            await r.txt("missing.example.test")
        with pytest.raises(NoRecord):
            await r.txt("a.example.test")
        with pytest.raises(DnsError):
            await r.addresses("slow.example.test")

    asyncio.run(run())


def test_async_and_blocking_lookups_share_one_answer_cache(dns_server):
    zone = dns_server.zone
    zone.add("cached.example.test", "TXT", "v=spf1 -all")
    r = resolver_for(dns_server)
    blocking = r.blocking(r.budget())
    assert asyncio.run(r.txt("cached.example.test")) == [b"v=spf1 -all"]
    assert blocking.txt("cached.example.test") == [b"v=spf1 -all"]
    assert blocking.pyspf("cached.example.test", "TXT") == [
        (("cached.example.test", "TXT"), (b"v=spf1 -all",))
    ]
    assert zone.queries.count(("cached.example.test", "TXT")) == 1
