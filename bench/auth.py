"""Benchmark: sender authentication (SPF + DKIM + DMARC) per message, real DNS on loopback.

Prints one JSON object. The loopback DNS server (dnslib, Python threads) runs on
the same cores and answers every query (`[dns] cache_size = 0`: the answer cache is off), so
this is the cost of a cold check of a signed message, DNS round trips included.

    .venv/bin/python bench/auth.py [--messages 400] [--concurrency 16] [--body-kb 5]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from filters.auth import AuthFilter
from filters.base import Scope
from gateway.adapters import Ports
from gateway.adapters.dns import Resolver
from gateway.config import DnsSettings
from gateway.domain_policy import DomainPolicy
from tests.support.dnsserver import LoopbackDns
from tests.support.mailauth import context, ed25519_key, message, publish, rsa_key, sign

DOMAINS = 20


def setup(zone) -> None:
    for i in range(DOMAINS):
        d = f"sender{i}.test"
        zone.add(d, "TXT", f"v=spf1 include:_spf.{d} -all")
        zone.add(f"_spf.{d}", "TXT", "v=spf1 ip4:198.51.100.0/24 ip4:192.0.2.0/24 ~all")
        zone.add(f"_dmarc.{d}", "TXT", "v=DMARC1; p=reject; rua=mailto:dmarc@" + d)
        publish(zone, "rsa", d, rsa_key())
        publish(zone, "ed", d, ed25519_key())


def messages(count: int, body_kb: int) -> list:
    body = ("Lorem ipsum dolor sit amet, consectetur adipiscing elit.\r\n" * 18 * body_kb)[:-2]
    out = []
    for i in range(count):
        d = f"sender{i % DOMAINS}.test"
        raw = message(from_header=f"<news@{d}>", body=body + f"\r\n{i}\r\n")
        key, sel = (rsa_key(), "rsa") if i % 2 == 0 else (ed25519_key(), "ed")
        raw = sign(raw, sel, d, key)
        out.append(context(raw, mail_from=f"bounce@{d}", helo=f"mail.{d}"))
    return out


async def run(ctxs, ports, concurrency: int) -> list[float]:
    f = AuthFilter("mx.bench.test")
    scope = Scope("local.test", DomainPolicy("local.test"))
    sem = asyncio.Semaphore(concurrency)
    latencies: list[float] = []

    async def one(ctx) -> None:
        async with sem:
            start = time.perf_counter()
            evidence = await f.lookup(ctx, ports)
            result = f.evaluate(ctx, evidence, scope)
            latencies.append(time.perf_counter() - start)
            assert any(s.name == "DMARC_PASS" for s in result.symbols), result.symbols

    await asyncio.gather(*(one(c) for c in ctxs))
    return latencies


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=400)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--body-kb", type=int, default=5)
    args = ap.parse_args()
    with LoopbackDns() as dns:
        setup(dns.zone)
        ctxs = messages(args.messages, args.body_kb)
        ports = Ports(
            dns=Resolver(DnsSettings(nameservers=[dns.nameserver], timeout=2.0, cache_size=0))
        )
        asyncio.run(run(ctxs[:20], ports, args.concurrency))  # warm up threads and imports
        queries_before = len(dns.zone.queries)
        start = time.perf_counter()
        latencies = asyncio.run(run(ctxs, ports, args.concurrency))
        seconds = time.perf_counter() - start
        queries = len(dns.zone.queries) - queries_before
    latencies.sort()
    print(
        json.dumps(
            {
                "benchmark": "auth",
                "date": datetime.date.today().isoformat(),
                "machine": f"{platform.machine()} {platform.node()}",
                "messages": args.messages,
                "concurrency": args.concurrency,
                "body_kb": args.body_kb,
                "seconds": round(seconds, 3),
                "messages_per_second": round(args.messages / seconds, 1),
                "dns_queries_per_message": round(queries / args.messages, 2),
                "latency_ms_p50": round(statistics.median(latencies) * 1000, 1),
                "latency_ms_p95": round(latencies[int(len(latencies) * 0.95) - 1] * 1000, 1),
                "latency_ms_max": round(latencies[-1] * 1000, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
