"""The gateway's own DNS client against real servers on loopback: one socket, matching
replies, TCP after truncation, time-outs, and the one cache (negative answers too)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import dns.message
import pytest

from gateway.adapters.dns import DnsError, NoRecord, Resolver
from gateway.config import DnsSettings
from tests.support.dnsserver import LoopbackDns


def resolver_for(nameserver: str, timeout: float = 1.0, cache_size: int = 1000) -> Resolver:
    return Resolver(DnsSettings(nameservers=[nameserver], timeout=timeout, cache_size=cache_size))


def test_a_long_answer_truncated_over_udp_comes_over_tcp():
    with LoopbackDns(udp_limit=512) as server:
        record = "v=DKIM1; k=rsa; p=" + "A" * 900
        server.zone.add("sel._domainkey.example.test", "TXT", record)
        server.zone.add("short.example.test", "TXT", "short")
        r = resolver_for(server.nameserver)

        async def run():
            assert await r.txt("short.example.test") == [b"short"]
            assert await r.txt("sel._domainkey.example.test") == [record.encode()]

        asyncio.run(run())
        # the same from a worker thread (pyspf, dkimpy)
        fresh = resolver_for(server.nameserver)
        assert fresh.blocking(fresh.budget()).txt("sel._domainkey.example.test") == [
            record.encode()
        ]


def test_negative_answers_are_cached_for_the_soa_minimum():
    with LoopbackDns() as server:
        server.zone.negative_ttl = 1
        server.zone.add("exists.example.test", "A", "192.0.2.1")
        r = resolver_for(server.nameserver)

        async def run():
            for _ in range(3):
                with pytest.raises(NoRecord, match="NXDOMAIN"):
                    await r.txt("_dmarc.nowhere.test")
                with pytest.raises(NoRecord, match="NoAnswer"):
                    await r.txt("exists.example.test")
            # NXDOMAIN says the name has no record of any type: not asked again for A
            with pytest.raises(NoRecord):
                await r.addresses("_dmarc.nowhere.test")

        asyncio.run(run())
        assert server.zone.queries.count(("_dmarc.nowhere.test", "TXT")) == 1
        assert ("_dmarc.nowhere.test", "A") not in server.zone.queries
        assert server.zone.queries.count(("exists.example.test", "TXT")) == 1
        # the blocking lookups of a worker thread read the same cache
        with pytest.raises(NoRecord):
            r.blocking(r.budget()).txt("_dmarc.nowhere.test")
        assert server.zone.queries.count(("_dmarc.nowhere.test", "TXT")) == 1
        time.sleep(1.1)  # the SOA's minimum (1 s) has passed: asked again
        with pytest.raises(NoRecord):
            asyncio.run(r.txt("_dmarc.nowhere.test"))
        assert server.zone.queries.count(("_dmarc.nowhere.test", "TXT")) == 2


def test_failures_are_not_cached_and_time_out_on_time():
    with LoopbackDns() as server:
        server.zone.add("slow.example.test", "A", "192.0.2.2")
        server.zone.slow("slow.example.test", 1.0)
        server.zone.add("broken.example.test", "A", "192.0.2.3")
        server.zone.fail("broken.example.test")
        r = resolver_for(server.nameserver, timeout=0.3)

        async def run():
            started = time.monotonic()
            with pytest.raises(DnsError, match="timeout"):
                await r.addresses("slow.example.test")
            assert time.monotonic() - started < 0.8
            for _ in range(2):
                with pytest.raises(DnsError):
                    await r.addresses("broken.example.test")
            # the slow answer arrives late on the shared socket: ignored, and the
            # next query on the same socket gets its own answer
            await asyncio.sleep(0.8)
            server.zone.slow("slow.example.test", 0)
            assert await r.addresses("slow.example.test") == ["192.0.2.2"]

        asyncio.run(run())
        assert server.zone.queries.count(("broken.example.test", "A")) == 2


def test_queries_share_one_socket_and_concurrent_twins_one_query():
    with LoopbackDns() as server:
        for i in range(20):
            server.zone.add(f"h{i}.example.test", "A", f"192.0.2.{i + 1}")
        r = resolver_for(server.nameserver, cache_size=0)
        ports = set()

        async def run():
            names = [f"h{i}.example.test" for i in range(20)]
            answers = await asyncio.gather(*(r.addresses(n) for n in names + names))
            assert answers == [[f"192.0.2.{i + 1}"] for i in range(20)] * 2
            for sock in r._client._sockets.values():
                ports.add(sock.transport.get_extra_info("sockname")[1])

        asyncio.run(run())
        assert len(ports) == 1
        assert all(server.zone.queries.count((f"h{i}.example.test", "A")) == 1 for i in range(20))


class _Forger:
    """A UDP server that answers each query first with a wrong id, then with the right
    id but another question, and only then with the real answer (after `delay`)."""

    def __init__(self, delay: float = 0.05) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.delay = delay
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def nameserver(self) -> str:
        return f"127.0.0.1:{self.sock.getsockname()[1]}"

    def _serve(self) -> None:
        while self.running:
            try:
                data, peer = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            query = dns.message.from_wire(data)
            name = query.question[0].name.to_text()
            wrong_id = dns.message.make_response(query)
            wrong_id.id = (query.id + 1) % 65536
            wrong_id.answer.append(_a_record(name, "198.51.100.66"))
            other = dns.message.make_query("other.example.test", "A")
            other.id = query.id
            wrong_question = dns.message.make_response(other)
            wrong_question.answer.append(_a_record("other.example.test.", "198.51.100.67"))
            self.sock.sendto(wrong_id.to_wire(), peer)
            self.sock.sendto(wrong_question.to_wire(), peer)
            self.sock.sendto(b"\x00garbage", peer)
            time.sleep(self.delay)
            right = dns.message.make_response(query)
            right.answer.append(_a_record(name, "192.0.2.7"))
            self.sock.sendto(right.to_wire(), peer)

    def close(self) -> None:
        self.running = False
        self.thread.join()
        self.sock.close()


def _a_record(name: str, address: str):
    import dns.rrset

    return dns.rrset.from_text(name, 60, "IN", "A", address)


def test_replies_with_another_id_or_question_are_ignored():
    forger = _Forger()
    try:
        r = resolver_for(forger.nameserver)
        assert asyncio.run(r.addresses("target.example.test")) == ["192.0.2.7"]
        fresh = resolver_for(forger.nameserver)
        assert fresh.blocking(fresh.budget()).resolve("target.example.test", "A")
        assert [a.address for a in fresh.cache.get("target.example.test", "A")] == ["192.0.2.7"]
    finally:
        forger.close()
