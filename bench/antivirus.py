"""Antivirus benchmark: what clamd scanning costs, alone and through the gateway.

Starts a real clamd (the project's signatures, as the tests do), then for 10 KB,
100 KB and 1 MB messages (a text body and a random attachment, unique each, so
clamd's cache never answers):

- clamd: INSTREAM scans per second through gateway.adapters.clamd, one at a
  time and 4 in flight;
- filter: the antivirus filter's lookup (every leaf part and the whole
  message) per message, p50/p95 milliseconds;
- gateway: a real `mailwarden serve` without and then with [clamav] (by
  default only the message checks besides: --chain full for every filter,
  DNS answered on loopback), SMTP transaction latency (connect to 250 after
  DATA) one client at a time, and messages per second with 4 clients;
  "added" is the difference of the medians.

Prints JSON. Not a test; numbers depend on the machine's load (printed too).

    .venv/bin/python bench/antivirus.py [--messages 100]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import aiosmtplib

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from relay import percentile, run_sink

from filters.antivirus import Antivirus
from gateway.adapters import Ports
from gateway.adapters.clamd import ClamdClient
from gateway.config import ClamavSettings
from gateway.model import Envelope, MessageContext
from gateway.pipeline.chain import FILTER_NAMES
from tests.support.clamd import ClamdServer
from tests.support.dnsserver import LoopbackDns
from tests.support.gateway import GatewayProcess, write_config
from tests.support.smtp_sink import free_port

CORE = ("message", "antivirus")
SIZES = {"10KB": 10 * 1024, "100KB": 100 * 1024, "1MB": 1024 * 1024}


def make_message(tag: str, size: int) -> bytes:
    """About `size` bytes: headers, a text body and a random attachment."""
    head = (
        f"From: bench@sender.test\r\nTo: bob@example.test\r\nSubject: {tag}\r\n"
        f"Date: Sun, 22 Nov 2026 10:00:00 +0000\r\nMessage-ID: <{tag}@sender.test>\r\n"
        'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b1"\r\n\r\n'
        "--b1\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nPlease see the file.\r\n"
        '--b1\r\nContent-Type: application/octet-stream; name="data.bin"\r\n'
        "Content-Transfer-Encoding: base64\r\n\r\n"
    ).encode()
    tail = b"\r\n--b1--\r\n"
    raw_len = max(16, (size - len(head) - len(tail)) * 3 // 4 * 76 // 78)
    body = base64.encodebytes(os.urandom(raw_len)).replace(b"\n", b"\r\n")
    return head + body + tail


def stats(values: list[float]) -> dict:
    return {
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "mean": round(statistics.fmean(values), 2),
    }


async def clamd_rates(client: ClamdClient, size: int, count: int) -> dict:
    out = {}
    for inflight in (1, 4):
        datas = [make_message(f"c{i}", size) for i in range(count)]
        gate = asyncio.Semaphore(inflight)

        async def one(data: bytes, gate: asyncio.Semaphore = gate) -> None:
            async with gate:
                await client.scan(data)

        start = time.perf_counter()
        await asyncio.gather(*(one(d) for d in datas))
        out[f"scans_per_second_{inflight}_in_flight"] = round(
            count / (time.perf_counter() - start), 1
        )
    return out


async def filter_latency(client: ClamdClient, settings: ClamavSettings, size: int, count: int):
    av = Antivirus(settings)
    ports = Ports(clamd=client)
    env = Envelope("bench@sender.test", ("bob@example.test",), "192.0.2.1")
    times = []
    for i in range(count):
        ctx = MessageContext(f"f{i}", env, make_message(f"f{i}", size), datetime.now(UTC))
        start = time.perf_counter()
        await av.lookup(ctx, ports)
        times.append((time.perf_counter() - start) * 1000)
    return stats(times)


async def smtp_latency(port: int, size: int, count: int, concurrency: int, prefix: str):
    jobs: asyncio.Queue[str] = asyncio.Queue()
    for i in range(count):
        jobs.put_nowait(f"bench-{prefix}-{i}")
    latencies: list[float] = []

    async def worker() -> None:
        while not jobs.empty():
            tag = jobs.get_nowait()
            data = make_message(tag, size)
            start = time.perf_counter()
            async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=120) as smtp:
                await smtp.sendmail("bench@sender.test", ["bob@example.test"], data)
            latencies.append((time.perf_counter() - start) * 1000)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, count / (time.perf_counter() - start)


def gateway_numbers(
    clamd: ClamdServer | None, sink_port: int, counts: dict, chain: str, nameserver: str
) -> dict:
    extra: dict[str, dict] = {
        "smtp": {
            "max_sessions_per_ip": 200,
            "max_sessions_per_network": 200,
            "max_message_size": 26_214_400,
        },
        "dns": {"nameservers": [nameserver]},
    }
    if chain == "core":  # the relay and the antivirus alone
        extra["pipeline"] = {"disable": [f for f in FILTER_NAMES if f not in CORE]}
    if clamd is not None:
        extra["clamav"] = {"socket": str(clamd.socket), "attachment_retention_days": 0}
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        gateway = GatewayProcess(write_config(Path(tmp), f"127.0.0.1:{sink_port}", extra)).start()
        try:
            asyncio.run(smtp_latency(gateway.port, 10 * 1024, 30, 4, "warm"))
            for label, size in SIZES.items():
                lat, _ = asyncio.run(smtp_latency(gateway.port, size, counts[label], 1, label))
                _, rate = asyncio.run(smtp_latency(gateway.port, size, counts[label], 4, label))
                out[label] = {
                    "latency_ms": stats(lat),
                    "messages_per_second_4_clients": round(rate, 1),
                }
        finally:
            gateway.stop()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100, help="per size (1 MB: a quarter)")
    parser.add_argument(
        "--chain",
        choices=("core", "full"),
        default="core",
        help="core: message checks and antivirus only; full: every filter (DNS on loopback)",
    )
    args = parser.parse_args()
    counts = {"10KB": args.messages, "100KB": args.messages, "1MB": max(10, args.messages // 4)}
    sink_port = free_port()
    arrivals, ready = multiprocessing.Queue(), multiprocessing.Event()
    sink = multiprocessing.Process(target=run_sink, args=(sink_port, arrivals, ready), daemon=True)
    sink.start()
    ready.wait(10)
    result: dict = {
        "benchmark": "antivirus",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()}",
        "python": platform.python_version(),
        "load_average_1m_before": round(os.getloadavg()[0], 2),
        "chain": args.chain,
    }
    with ClamdServer() as clamd:
        settings = ClamavSettings(socket=clamd.socket, stream_max_length=64 * 1024 * 1024)
        client = ClamdClient.from_settings(settings)
        try:
            result["clamd"] = client.version_sync().raw
            for label, size in SIZES.items():
                entry = asyncio.run(clamd_rates(client, size, counts[label]))
                entry["filter_lookup_ms"] = asyncio.run(
                    filter_latency(client, settings, size, counts[label])
                )
                result.setdefault("scan", {})[label] = entry
        finally:
            client.close()
        with LoopbackDns() as dns:
            dns.zone.add("sender.test", "TXT", "v=spf1 ip4:127.0.0.1 -all")
            without = gateway_numbers(None, sink_port, counts, args.chain, dns.nameserver)
            with_av = gateway_numbers(clamd, sink_port, counts, args.chain, dns.nameserver)
    sink.terminate()
    result["gateway"] = {
        label: {
            "without_antivirus": without[label],
            "with_antivirus": with_av[label],
            "added_latency_ms_p50": round(
                with_av[label]["latency_ms"]["p50"] - without[label]["latency_ms"]["p50"], 2
            ),
        }
        for label in SIZES
    }
    result["load_average_1m_after"] = round(os.getloadavg()[0], 2)
    while not arrivals.empty():
        arrivals.get_nowait()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
