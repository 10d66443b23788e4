"""CPU per DNS query on the event loop: the gateway's client against dnspython's resolver.

The loopback DNS server of the tests runs in another process, so the CPU time of
this process (time.process_time) is the client's alone: building the query,
the socket work, matching and parsing the reply. Each client asks the same
questions (half of them answered TXT records, half NXDOMAIN as DMARC discovery
mostly meets), `--concurrency` at a time, with its cache off so every question
reaches the server; then the gateway's client once more with its cache on
(every answer already there).

Prints JSON. Not a test.

    .venv/bin/python bench/dns_client.py [--queries 4000] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import dns.asyncresolver
import dns.resolver

from gateway.adapters.dns import NoRecord, Resolver
from gateway.config import DnsSettings


def _serve(port_out: Any, stop: Any, names: int) -> None:
    from tests.support.dnsserver import LoopbackDns

    with LoopbackDns() as server:
        for i in range(names):
            server.zone.add(f"_dmarc.d{i}.example.test", "TXT", "v=DMARC1; p=none")
        port_out.put(server.port)
        stop.wait()


async def _run(ask: Any, questions: list[str], concurrency: int) -> None:
    queue = list(reversed(questions))

    async def worker() -> None:
        while queue:
            name = queue.pop()
            with contextlib.suppress(NoRecord, dns.resolver.NXDOMAIN):
                await ask(name)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


def _measure(ask: Any, questions: list[str], concurrency: int) -> dict[str, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    asyncio.run(_run(ask, questions, concurrency))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {
        "cpu_us_per_query": round(cpu / len(questions) * 1e6, 1),
        "queries_per_second": round(len(questions) / wall, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    half = args.queries // 2
    context = multiprocessing.get_context("spawn")
    port_out, stop = context.Queue(), context.Event()
    server = context.Process(target=_serve, args=(port_out, stop, half), daemon=True)
    server.start()
    port = port_out.get(timeout=30)
    try:
        questions = [f"_dmarc.d{i}.example.test" for i in range(half)]
        questions += [f"_dmarc.missing{i}.example.test" for i in range(args.queries - half)]
        settings = DnsSettings(nameservers=[f"127.0.0.1:{port}"], timeout=2.0, cache_size=0)

        old = dns.asyncresolver.Resolver(configure=False)
        old.nameservers, old.port, old.cache = ["127.0.0.1"], port, None
        old.timeout = old.lifetime = 2.0

        async def ask_old(name: str) -> Any:
            return await old.resolve(name, "TXT", search=False)

        new = Resolver(settings)

        async def ask_new(name: str) -> Any:
            return await new.resolve(name, "TXT")

        cached = Resolver(settings.model_copy(update={"cache_size": args.queries * 2}))

        async def ask_cached(name: str) -> Any:
            return await cached.resolve(name, "TXT")

        asyncio.run(_run(ask_cached, questions, args.concurrency))  # fill the cache
        results: dict[str, list[dict[str, float]]] = {}
        for _ in range(args.rounds):  # alternate: the machine's load changes
            for label, ask in (
                ("dnspython_asyncresolver", ask_old),
                ("gateway_client", ask_new),
                ("gateway_client_cache_hits", ask_cached),
            ):
                results.setdefault(label, []).append(_measure(ask, questions, args.concurrency))
    finally:
        stop.set()
        server.join(5)
    print(
        json.dumps(
            {
                "benchmark": "dns_client",
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                "python": platform.python_version(),
                "load_average_1m_at_end": round(os.getloadavg()[0], 2),
                "queries": args.queries,
                "concurrency": args.concurrency,
                "results": results,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
