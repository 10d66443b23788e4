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
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.smtpload import CountingSink, send_one
from gateway.pipeline.chain import FILTER_NAMES
from tests.support.dnsserver import LoopbackDns
from tests.support.gateway import GatewayProcess, write_config


def run_sink(conn) -> None:
    """The counting sink in its own process: sends its port, later its arrivals."""

    async def serve() -> None:
        sink = CountingSink()
        conn.send(await sink.start())
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, conn.recv)  # wait for "stop"
        conn.send(sink.arrivals)

    asyncio.run(serve())


def make_message(tag: str, size: int) -> bytes:
    head = (
        f"X-Bench-Tag: {tag}\r\nFrom: bench@sender.test\r\nTo: bob@example.test\r\n"
        f"Subject: {tag}\r\n"
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
        reply = await send_one("127.0.0.1", port, "bench@sender.test", "bob@example.test", data)
        if not reply.startswith(b"250"):
            raise RuntimeError(f"{tag}: {reply!r}")
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
    """User + system CPU time of a process and its children so far (Linux /proc)."""
    total = 0.0
    for task in [pid, *_children(pid)]:
        try:
            fields = Path(f"/proc/{task}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _children(pid: int) -> list[int]:
    try:
        found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    return [int(c) for c in found]


PROFILE_MODES = {
    "gil": ["--gil", "--nonblocking"],  # the thread holding the GIL: what one core runs
    "cpu": ["--nonblocking"],  # every thread on a CPU (py-spy leaves idle ones out)
    "idle": ["--idle", "--nonblocking"],  # every thread, waiting or not: where time passes
}


def start_profiler(pid: int, output: str, mode: str = "gil") -> subprocess.Popen:
    """py-spy sampling the gateway until SIGINT, from outside: the gateway runs unchanged.
    By default only GIL-holding samples: the gateway is bound by one core of Python per
    process (see PROFILE_MODES; --nonblocking: the gateway is never paused to sample)."""
    exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    command = [exe, "record", "--pid", str(pid), "--subprocesses", *PROFILE_MODES[mode]]
    command += ["--format", "raw"]
    command += ["--rate", "200", "--output", output]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # let it attach before the measured run starts
    return proc


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
    parser.add_argument("--processes", type=int, default=1, help="[smtp] processes")
    parser.add_argument("--store", help="[store] url (default: SQLite in a temporary folder)")
    parser.add_argument(
        "--profile",
        metavar="FILE",
        help="sample the gateway with py-spy during the measured run (the thread holding "
        "the GIL, in every gateway process) and write collapsed stacks to FILE",
    )
    args = parser.parse_args()

    here, there = multiprocessing.Pipe()
    sink = multiprocessing.Process(target=run_sink, args=(there,), daemon=True)
    sink.start()
    sink_port = here.recv()
    with tempfile.TemporaryDirectory() as tmp, LoopbackDns() as dns:
        dns.zone.add("sender.test", "TXT", "v=spf1 ip4:127.0.0.1 -all")
        extra: dict[str, dict] = {
            "smtp": {
                "max_sessions_per_ip": 200,
                "max_sessions_per_network": 200,
                "max_message_size": 26_214_400,
                "processes": args.processes,
            },
            "dns": {"nameservers": [dns.nameserver]},
        }
        if args.store:
            extra["store"] = {"url": args.store}
        if args.chain == "core":
            extra["pipeline"] = {"disable": [f for f in FILTER_NAMES if f != "message"]}
        config = write_config(Path(tmp), f"127.0.0.1:{sink_port}", extra)
        gateway = GatewayProcess(config).start()
        try:
            asyncio.run(run_clients(gateway.port, 200, args.concurrency, args.size, "warm"))
            cpu_before = cpu_seconds(gateway.proc.pid)
            profiler = start_profiler(gateway.proc.pid, args.profile) if args.profile else None
            seconds, latencies, sent = asyncio.run(
                run_clients(gateway.port, args.messages, args.concurrency, args.size, "run")
            )
            deadline = time.time() + 60
            while time.time() < deadline:  # wait for the deliveries to drain
                time.sleep(0.5)
                if not list((Path(tmp) / "spool").glob("**/queue/*.json")):
                    break
            here.send("stop")
            received = here.recv()
            delays = [(received[t] - sent[t]) * 1000 for t in sent if t in received]
            gateway_cpu = cpu_seconds(gateway.proc.pid) - cpu_before
            if profiler is not None:
                profiler.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
                profiler.wait(30)
            load = os.getloadavg()[0]
        finally:
            gateway.stop()
    sink.terminate()
    print(
        json.dumps(
            {
                "benchmark": "relay",
                "chain": args.chain,
                "processes": args.processes,
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
