"""Relay benchmark: 10 KB messages from 16 concurrent clients through the gateway.

Starts a real `mailwarden serve` (SQLite ledger, fsynced spool) in front of a
sink in another process, sends messages with aiosmtplib, and prints JSON:
throughput, SMTP transaction latency (connect to 250 after DATA), delivery
delay (250 to arrival at the sink) and the gateway's CPU a message, in all and
per thread (user and system time, context switches, from /proc; threads named by `py-spy dump`).
`--variant before=DIR --rounds N` runs another checkout's gateway alternately
with this one. Not a test: run it with `make bench`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tests.support.gateway as support
from bench.smtpload import CountingSink, send_one
from gateway.pipeline.chain import FILTER_NAMES
from tests.support.dnsserver import LoopbackDns
from tests.support.gateway import REPO, GatewayProcess, write_config


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


def thread_names(pid: int) -> dict[int, str]:
    """Native thread id -> Python thread name, for the gateway and its children, from
    `py-spy dump` (empty without py-spy): pools' threads grouped by their prefix."""
    exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    try:
        out = subprocess.run(
            [exe, "dump", "--pid", str(pid), "--subprocesses", "--nonblocking"],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return {}
    names = {}
    for line in out.splitlines():
        if line.startswith("Thread ") and '"' in line:
            tid = line.split()[1]
            if tid.isdigit():
                name = line.split('"')[1]
                names[int(tid)] = re.sub(r"_\d+$", "", name)  # spool_3 -> spool
    return names


def threads_cpu(pid: int) -> Iterator[tuple[int, str, float, float]]:
    """(process, thread id, user s, system s) so far of every thread of a process and
    of its children, from /proc: a CPU-time sampler that needs nothing in the gateway."""
    tick = os.sysconf("SC_CLK_TCK")
    for proc in [pid, *_children(pid)]:
        try:
            tasks = os.listdir(f"/proc/{proc}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                stat = Path(f"/proc/{proc}/task/{task}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            yield proc, task, int(stat[11]) / tick, int(stat[12]) / tick


def thread_cpu(pid: int, names: dict[int, str]) -> dict[str, list[float]]:
    """[user, system] CPU seconds and context switches so far of every thread of the gateway and its
    children, summed by thread name (threads not named: by process main / other)."""
    out: dict[str, list[float]] = {}
    for proc, task, user, system in threads_cpu(pid):
        tid = int(task)
        name = names.get(tid) or ("MainThread" if tid == proc else "other")
        cell = out.setdefault(name, [0.0, 0.0, 0.0])
        cell[0] += user
        cell[1] += system
        cell[2] += _switches(proc, task)
    return out


def _switches(proc: int, task: str) -> int:
    """Context switches of a thread so far (voluntary + not): each one a wake-up."""
    try:
        text = Path(f"/proc/{proc}/task/{task}/status").read_text()
    except OSError:
        return 0
    return sum(int(line.split()[1]) for line in text.splitlines() if "ctxt_switches" in line)


def measure(args: argparse.Namespace, checkout: Path, prefix: str) -> dict:
    """One run of the gateway from `checkout`: warm-up, then the measured messages."""
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
        gateway = GatewayProcess(config)
        saved = (support.REPO, os.environ.get("PYTHONPATH"))
        support.REPO = checkout  # the gateway runs from that checkout's package
        os.environ["PYTHONPATH"] = str(checkout)
        try:
            gateway.start(timeout=120)
        finally:
            support.REPO = saved[0]
            if saved[1] is None:
                os.environ.pop("PYTHONPATH", None)
            else:
                os.environ["PYTHONPATH"] = saved[1]
        assert gateway.proc is not None
        pid = gateway.proc.pid
        try:
            asyncio.run(run_clients(gateway.port, 200, args.concurrency, args.size, "warm"))
            names = thread_names(pid)
            cpu_before = cpu_seconds(pid)
            threads_before = thread_cpu(pid, names)
            profiler = start_profiler(pid, args.profile) if args.profile else None
            seconds, latencies, sent = asyncio.run(
                run_clients(gateway.port, args.messages, args.concurrency, args.size, prefix)
            )
            deadline = time.time() + 60
            while time.time() < deadline:  # wait for the deliveries to drain
                time.sleep(0.5)
                if not list((Path(tmp) / "spool").glob("**/queue/*.json")):
                    break
            here.send("stop")
            received = here.recv()
            delays = [(received[t] - sent[t]) * 1000 for t in sent if t in received]
            gateway_cpu = cpu_seconds(pid) - cpu_before
            threads_after = thread_cpu(pid, names)
            if profiler is not None:
                profiler.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
                profiler.wait(30)
            load = os.getloadavg()[0]
        finally:
            gateway.stop()
    sink.terminate()
    n = len(latencies)
    per_thread = {}
    for name, (user, system, switches) in sorted(threads_after.items()):
        u0, s0, w0 = threads_before.get(name, (0.0, 0.0, 0.0))
        user_ms, system_ms = (user - u0) / n * 1000, (system - s0) / n * 1000
        if user_ms + system_ms > 0:
            per_thread[name] = {
                "user": round(user_ms, 3),
                "system": round(system_ms, 3),
                "switches": round((switches - w0) / n, 2),
            }
    return {
        "code": str(checkout),
        "messages": n,
        "seconds": round(seconds, 2),
        "messages_per_second": round(n / seconds, 1),
        "latency_ms": {
            "p50": percentile(latencies, 50),
            "p99": percentile(latencies, 99),
            "mean": round(statistics.fmean(latencies), 2),
        },
        "gateway_cpu_ms_per_message": round(gateway_cpu / n * 1000, 3),
        "thread_cpu_ms_per_message": per_thread,
        "load_average_1m": round(load, 2),
        "delivered": len(delays),
        "delivery_delay_ms": {
            "p50": percentile(delays, 50) if delays else None,
            "p99": percentile(delays, 99) if delays else None,
        },
    }


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
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="also run the gateway from another checkout, alternating with this one "
        "round by round (ratios this/NAME are printed)",
    )
    parser.add_argument("--rounds", type=int, default=1, help="runs of each variant")
    args = parser.parse_args()

    variants = [("this", REPO)]
    for spec in args.variant:
        name, _, path = spec.partition("=")
        variants.append((name, Path(path).resolve()))
    runs: dict[str, list[dict]] = {name: [] for name, _ in variants}
    for round_no in range(args.rounds):
        order = variants if round_no % 2 == 0 else variants[::-1]  # neither always first
        for name, checkout in order:
            runs[name].append(measure(args, checkout, f"run-{name}-{round_no}"))
    header = {
        "benchmark": "relay",
        "chain": args.chain,
        "processes": args.processes,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()}",
        "python": platform.python_version(),
        "message_bytes": args.size,
        "concurrency": args.concurrency,
    }
    if len(variants) == 1 and args.rounds == 1:
        print(json.dumps(header | runs["this"][0], indent=2))
        return
    result: dict = header | {"runs": runs}
    for name, _ in variants[1:]:
        result[f"this/{name}"] = {
            "gateway_cpu_ms_per_message": [
                round(a["gateway_cpu_ms_per_message"] / b["gateway_cpu_ms_per_message"], 3)
                for a, b in zip(runs["this"], runs[name], strict=True)
            ],
            "messages_per_second": [
                round(a["messages_per_second"] / b["messages_per_second"], 3)
                for a, b in zip(runs["this"], runs[name], strict=True)
            ],
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
