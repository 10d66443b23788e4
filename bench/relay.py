"""Relay benchmark: 10 KB messages from 16 concurrent clients through the gateway.

Starts a real `mailwarden serve` (SQLite ledger, fsynced spool) in front of a
sink in another process, sends messages with aiosmtplib, and prints JSON:
throughput, SMTP transaction latency (connect to 250 after DATA) and delivery
delay (250 to arrival at the sink). Not a test: run it with `make bench`.
"""

from __future__ import annotations

import argparse
import asyncio
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

from gateway.chain import FILTER_NAMES
from tests.support.dnsserver import LoopbackDns
from tests.support.gateway import GatewayProcess, write_config
from tests.support.smtp_sink import free_port


def run_sink(port: int, arrivals, ready) -> None:
    """A counting sink in its own process: records arrival time per Subject."""
    from aiosmtpd.controller import Controller

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            data = envelope.original_content
            start = data.find(b"\r\nSubject: bench-") + len(b"\r\nSubject: ")
            arrivals.put((data[start : data.find(b"\r\n", start)].decode(), time.time()))
            return "250 2.0.0 Ok"

    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    ready.set()
    while True:
        time.sleep(3600)


def make_message(tag: str, size: int) -> bytes:
    head = (
        f"From: bench@sender.test\r\nTo: bob@example.test\r\nSubject: {tag}\r\n"
        f"Date: Sun, 22 Nov 2026 10:00:00 +0000\r\nMessage-ID: <{tag}@sender.test>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
    ).encode()
    line = b"The quick brown fox jumps over the lazy dog. 0123456789 abcdefghij\r\n"
    body = line * ((size - len(head)) // len(line) + 1)
    return head + body[: size - len(head)]


async def client(port: int, jobs: asyncio.Queue, latencies: list, sent: dict, size: int) -> None:
    while True:
        try:
            tag = jobs.get_nowait()
        except asyncio.QueueEmpty:
            return
        data = make_message(tag, size)
        start = time.perf_counter()
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=60) as smtp:
            await smtp.sendmail("bench@sender.test", ["bob@example.test"], data)
        latencies.append((time.perf_counter() - start) * 1000)
        sent[tag] = time.time()


async def run_clients(port: int, count: int, concurrency: int, size: int, prefix: str):
    jobs: asyncio.Queue[str] = asyncio.Queue()
    for i in range(count):
        jobs.put_nowait(f"bench-{prefix}-{i}")
    latencies: list[float] = []
    sent: dict[str, float] = {}
    start = time.perf_counter()
    await asyncio.gather(*(client(port, jobs, latencies, sent, size) for _ in range(concurrency)))
    return time.perf_counter() - start, latencies, sent


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))], 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--size", type=int, default=10 * 1024)
    parser.add_argument(
        "--chain",
        choices=("core", "full"),
        default="core",
        help="core: the relay alone (built-in message checks); full: every filter, "
        "with DNS answered by a loopback server in this process",
    )
    args = parser.parse_args()

    sink_port = free_port()
    arrivals, ready = multiprocessing.Queue(), multiprocessing.Event()
    sink = multiprocessing.Process(target=run_sink, args=(sink_port, arrivals, ready), daemon=True)
    sink.start()
    ready.wait(10)
    with tempfile.TemporaryDirectory() as tmp, LoopbackDns() as dns:
        dns.zone.add("sender.test", "TXT", "v=spf1 ip4:127.0.0.1 -all")
        extra: dict[str, dict] = {
            "smtp": {"max_sessions_per_ip": 200, "max_message_size": 26_214_400},
            "dns": {"nameservers": [dns.nameserver]},
        }
        if args.chain == "core":
            extra["pipeline"] = {"disable": [f for f in FILTER_NAMES if f != "message"]}
        config = write_config(Path(tmp), f"127.0.0.1:{sink_port}", extra)
        gateway = GatewayProcess(config).start()
        try:
            asyncio.run(run_clients(gateway.port, 200, args.concurrency, args.size, "warm"))
            cpu_before = cpu_seconds(gateway.proc.pid)
            seconds, latencies, sent = asyncio.run(
                run_clients(gateway.port, args.messages, args.concurrency, args.size, "run")
            )
            delays = []
            deadline = time.time() + 60
            received: dict[str, float] = {}
            while len(received) < len(sent) + 200 and time.time() < deadline:
                try:
                    tag, when = arrivals.get(timeout=1)
                except Exception:  # noqa: BLE001 - queue.Empty
                    continue
                received[tag] = when
            delays = [(received[t] - sent[t]) * 1000 for t in sent if t in received]
            gateway_cpu = cpu_seconds(gateway.proc.pid) - cpu_before
            load = os.getloadavg()[0]
        finally:
            gateway.stop()
    sink.terminate()
    print(
        json.dumps(
            {
                "benchmark": "relay",
                "chain": args.chain,
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()}",
                "python": platform.python_version(),
                "message_bytes": args.size,
                "concurrency": args.concurrency,
                "messages": len(latencies),
                "seconds": round(seconds, 2),
                "messages_per_second": round(len(latencies) / seconds, 1),
                "latency_ms": {
                    "p50": percentile(latencies, 50),
                    "p99": percentile(latencies, 99),
                    "mean": round(statistics.fmean(latencies), 2),
                },
                "gateway_cpu_ms_per_message": round(gateway_cpu / len(latencies) * 1000, 2),
                "load_average_1m": round(load, 2),
                "delivered": len(delays),
                "delivery_delay_ms": {
                    "p50": percentile(delays, 50) if delays else None,
                    "p99": percentile(delays, 99) if delays else None,
                },
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
