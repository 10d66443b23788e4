"""Side by side: mailwarden's full chain through SMTP against rspamd scanning alone.

Both get the same real messages (a fixed sample of the labelled corpora in
MAILWARDEN_CORPORA, default ../shared/corpora, read from the tar.gz files in
memory) on the same cores, in alternating rounds, because this machine's load
changes from minute to minute and only a ratio measured in one run means much.

- rspamd: Debian's package, started by this script with a configuration in a
  temporary directory that includes the packaged one (read it in /etc/rspamd),
  bound to loopback, 2 normal workers, network modules off (RBL, fuzzy, DCC,
  ASN, reputation...), its DNS pointed at the loopback DNS server (SPF, DKIM,
  DMARC ask it, nothing leaves the machine), no Bayes (no Redis). Messages go to
  /checkv2 over keep-alive HTTP, with the envelope in headers.
- mailwarden: `mailwarden serve` with `[smtp] processes = 2` (or --processes)
  and every filter on: SPF/DKIM/DMARC against the loopback DNS server, a DNSBL
  and a URIBL zone there (check_private, so 127.0.0.1 is looked up), local
  lists with entries, the example domain's rules, the classifier, ClamAV (a
  clamd started here with rules/clamav signatures), the spool with fsync, the
  SQLite ledger, delivery to a counting sink in another process.
- `--variant NAME=DIR`: also run mailwarden from another checkout (for example
  the code before a change), alternating with this one; ratios against rspamd
  and against the first variant are printed.
- offered rates (`--rates 100,150`): an open-loop client starts a transaction
  every 1/rate seconds for `--rate-seconds`; latency counts from the moment it
  was due (so queueing in front of the listener counts), "added" subtracts the
  median of the same client against the bare sink; client time-outs (no final
  reply within --timeout s) and the kernel's ListenOverflows / ListenDrops
  (/proc/net/netstat: the whole network namespace, other programs included).
- `--memory N`: send N small messages at a steady closed-loop pace and print the
  resident memory of the gateway processes every `--memory-every` messages.

Prints JSON. Not a test.

    .venv/bin/python bench/chain.py [--messages 3000] [--rounds 2] [--concurrency 8]
    .venv/bin/python bench/chain.py --variant before=/path/to/old/checkout
    .venv/bin/python bench/chain.py --skip-rspamd --rates "" --memory 20000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.relay import PROFILE_MODES, cpu_seconds, percentile, run_sink, start_profiler
from bench.smtpload import send_one, tagged, wire_form
from tests.support.clamd import ClamdServer
from tests.support.dnsserver import LoopbackDns
from tests.support.gateway import GatewayProcess, write_config
from tests.support.smtp_sink import free_port

REPO = Path(__file__).resolve().parents[1]
CORPORA = ("spamassassin", "trec07p", "trec06c_subset", "csdmc2010")
SENDER = "bench@sender.test"
RCPT = "bob@example.test"
RSPAMD_IP = "192.0.2.10"  # rspamd's own local_addrs would skip SPF for 127.0.0.1
RSPAMD = shutil.which("rspamd") or "/usr/sbin/rspamd"
RSPAMD_OFF = (  # modules that would ask the network or need Redis
    *("rbl", "surbl", "fuzzy_check", "dcc", "asn", "reputation", "neural", "ratelimit"),
    *("greylist", "history_redis", "replies", "clickhouse", "elastic", "metadata_exporter"),
    *("mx_check", "p0f", "spamassassin", "url_redirector", "external_services", "antivirus"),
    *("rspamd_update", "bimi", "aws_s3", "metric_exporter", "dkim_signing", "emails"),
    "spamtrap",
)


# ---------------------------------------------------------------- the messages


def corpus_dir() -> Path:
    return Path(os.environ.get("MAILWARDEN_CORPORA", REPO.parent / "shared" / "corpora"))


def sample(total: int, seed: int = 17) -> list[tuple[str, bytes]]:
    """A fixed sample: `total` messages spread evenly over the corpora and their ham and
    spam, chosen by a seeded draw over each archive's members, read in memory."""
    per_corpus = total // len(CORPORA)
    out: list[tuple[str, bytes]] = []
    for corpus in CORPORA:
        path = corpus_dir() / f"{corpus}.tar.gz"
        with tarfile.open(path, "r:gz") as tar:
            members = [m for m in tar.getmembers() if m.isfile() and "/" in m.name]
            labelled = [m for m in members if {"ham", "spam"} & set(m.name.split("/")[:-1])]
            rng = random.Random(f"{seed}:{corpus}")
            chosen = sorted(
                rng.sample(labelled, min(per_corpus, len(labelled))), key=lambda m: m.offset
            )
            for member in chosen:
                fh = tar.extractfile(member)
                if fh is not None:
                    out.append((f"{corpus}/{member.name}", fh.read()))
    random.Random(seed).shuffle(out)
    return out


# ---------------------------------------------------------------- rspamd


class Rspamd:
    """rspamd from Debian's package, configured in a temporary directory."""

    def __init__(self, directory: Path, nameserver: str, workers: int = 2) -> None:
        self.dir = directory
        self.port = free_port()
        self.controller = free_port()
        local = directory / "local"
        for sub in ("local.d", "override.d", "db", "run", "log"):
            (local / sub if sub.endswith(".d") else directory / sub).mkdir(parents=True)
        host, port = nameserver.rsplit(":", 1) if ":" in nameserver else (nameserver, "53")
        (local / "local.d" / "options.inc").write_text(
            f'dns {{ nameserver = ["{host}:{port}"]; timeout = 1s; retransmits = 1; }}\n'
            'filters = "chartable,dkim,regexp";\n'
            "map_watch_interval = 1h;\n"
        )
        (local / "override.d" / "worker-normal.inc").write_text(
            f'bind_socket = "127.0.0.1:{self.port}";\ncount = {workers};\n'
        )
        (local / "override.d" / "worker-controller.inc").write_text(
            f'bind_socket = "127.0.0.1:{self.controller}";\ncount = 1;\n'
        )
        (local / "override.d" / "worker-proxy.inc").write_text("enabled = false;\n")
        (local / "override.d" / "logging.inc").write_text(
            f'type = "file";\nfilename = "{directory / "log" / "rspamd.log"}";\nlevel = "error";\n'
        )
        (local / "override.d" / "classifier-bayes.conf").write_text("enabled = false;\n")
        for module in RSPAMD_OFF:
            (local / "override.d" / f"{module}.conf").write_text("enabled = false;\n")
        self.args = [
            RSPAMD,
            "-f",
            "-i",
            "-u",
            "root" if os.geteuid() == 0 else str(os.getuid()),
            "-c",
            "/etc/rspamd/rspamd.conf",
            f"--var=LOCAL_CONFDIR={local}",
            f"--var=DBDIR={directory / 'db'}",
            f"--var=RUNDIR={directory / 'run'}",
            f"--var=LOGDIR={directory / 'log'}",
        ]
        if os.geteuid() == 0:
            self.args += ["-g", "root"]
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 240.0) -> Rspamd:  # over a minute on a loaded machine
        with open(self.dir / "stderr.log", "wb") as stderr:
            self.proc = subprocess.Popen(self.args, stdout=subprocess.DEVNULL, stderr=stderr)
        deadline = time.monotonic() + timeout
        probe = b"Subject: probe\r\nFrom: a@b.test\r\n\r\nhello\r\n"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                asyncio.run(HttpClient("127.0.0.1", self.port).check(probe, close=True))
                return self
            except (OSError, ConnectionError, ValueError):
                time.sleep(0.2)
        log = (self.dir / "stderr.log").read_text(errors="replace")[-3000:]
        self.stop()
        raise RuntimeError(f"rspamd did not start: {log}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class HttpClient:
    """A keep-alive HTTP/1.1 client for /checkv2 on raw asyncio streams (like smtpload)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def check(self, message: bytes, close: bool = False) -> dict[str, Any]:
        for attempt in (1, 2):
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection(
                    self.host, self.port, limit=64 * 1024 * 1024
                )
            try:
                return await self._exchange(message, close)
            except (ConnectionError, asyncio.IncompleteReadError):
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def _exchange(self, message: bytes, close: bool) -> dict[str, Any]:
        assert self.reader is not None and self.writer is not None
        head = (
            f"POST /checkv2 HTTP/1.1\r\nHost: rspamd\r\nContent-Length: {len(message)}\r\n"
            f"IP: {RSPAMD_IP}\r\nHelo: load.test\r\nFrom: {SENDER}\r\nRcpt: {RCPT}\r\n"
            f"Connection: {'close' if close else 'keep-alive'}\r\n\r\n"
        )
        self.writer.write(head.encode() + message)
        status = await self.reader.readuntil(b"\r\n")
        length, keep = 0, not close
        while (line := await self.reader.readuntil(b"\r\n")) != b"\r\n":
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value)
            elif name.lower() == "connection" and "close" in value.lower():
                keep = False
        body = await self.reader.readexactly(length)
        if not keep:
            self.close()
        if b" 200 " not in status:
            raise ValueError(f"rspamd: {status!r} {body[:200]!r}")
        result: dict[str, Any] = json.loads(body)
        return result

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def rspamd_round(port: int, messages: list[bytes], concurrency: int) -> dict[str, Any]:
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for m in messages:
        queue.put_nowait(m)
    latencies: list[float] = []
    actions: dict[str, int] = {}
    errors = 0

    async def worker() -> None:
        nonlocal errors
        client = HttpClient("127.0.0.1", port)
        while not queue.empty():
            message = queue.get_nowait()
            start = time.perf_counter()
            try:
                result = await client.check(message)
            except (OSError, ValueError, asyncio.IncompleteReadError):
                errors += 1
                continue
            latencies.append((time.perf_counter() - start) * 1000)
            action = str(result.get("action", "?"))
            actions[action] = actions.get(action, 0) + 1
        client.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return {
        "seconds": time.perf_counter() - start,
        "latencies": latencies,
        "outcomes": actions,
        "errors": errors,
    }


# ---------------------------------------------------------------- mailwarden


@dataclass
class Variant:
    name: str
    checkout: Path
    gateway: GatewayProcess | None = None
    rounds: list[dict[str, Any]] = field(default_factory=list)


RULES = """domain: example.test
rules:
  - name: cheap-pills
    when: {subject: {matches: "(?i)cheap\\\\s+pills"}}
    then: {score: 6.0}
  - name: no-executables
    when: {attachment: {name_matches: "(?i)\\\\.(exe|scr)$"}}
    then: {action: reject, text: "executables are not accepted here"}
  - name: invoice-phish
    when:
      all:
        - subject: {contains: [invoice, payment]}
        - url: {matches: "^https?://"}
        - classifier: {above: 0.7}
    then: {score: 4.0, symbol: CUSTOM_SUSPECT}
  - name: bulk-mailer
    when: {header: {name: X-Mailer, contains: bulk}}
    then: {score: 1.0}
  - name: viagra-body
    when: {body: {contains: [viagra, cialis]}}
    then: {score: 2.0}
"""

LIST_ENTRIES = [
    ("block", "203.0.113.0/24"),
    ("block", "spammer.test"),
    ("block", "bad@sender2.test"),
    ("allow", "partner.test"),
    ("allow", "198.51.100.7"),
]


def prepare(raws: list[bytes], prefix: str) -> list[tuple[str, bytes]]:
    """Each message tagged (the sink tells them apart) and in wire form."""
    return [(f"{prefix}{i}", wire_form(tagged(f"{prefix}{i}", raw))) for i, raw in enumerate(raws)]


def gateway_config(
    directory: Path, sink_port: int, dns: LoopbackDns, clamd: ClamdServer, processes: int
) -> Path:
    rules = directory / "rules"
    rules.mkdir()
    (rules / "example.test.yaml").write_text(RULES)
    extra: dict[str, dict[str, Any]] = {
        "smtp": {
            "max_sessions": 1000,
            "max_sessions_per_ip": 1000,
            "max_sessions_per_network": 1000,
            "max_message_size": 26_214_400,
            "processes": processes,
            "timeout": 60.0,
        },
        "dns": {"nameservers": [dns.nameserver]},
        "clamav": {"socket": str(clamd.socket)},
        "blocklist": {"check_private": True},
        "rules": {"dir": str(rules)},
        "pipeline": {"budget": 20.0},
    }
    config = write_config(directory, f"127.0.0.1:{sink_port}", extra)
    with config.open("a") as fh:
        fh.write('\n[[dnsbl]]\nzone = "dnsbl.bench.test"\n')
        fh.write('\n[[uribl]]\nzone = "uribl.bench.test"\n')
    return config


def mailwarden(checkout: Path, *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args], cwd=checkout, check=True, capture_output=True
    )


def start_variant(variant: Variant, config: Path) -> None:
    for kind, value in LIST_ENTRIES:
        mailwarden(variant.checkout, "lists", "add", kind, value, "--config", str(config))
    gateway = GatewayProcess(config)
    gateway_module_dir = variant.checkout
    env_repo = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(gateway_module_dir)
    try:
        import tests.support.gateway as support

        saved = support.REPO
        support.REPO = gateway_module_dir
        try:
            gateway.start(timeout=120)
        finally:
            support.REPO = saved
    finally:
        if env_repo is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = env_repo
    variant.gateway = gateway


def reply_class(reply: bytes) -> str:
    return reply[:3].decode("ascii", "replace")


async def smtp_round(
    port: int, messages: list[tuple[str, bytes]], concurrency: int, timeout: float
) -> dict[str, Any]:
    queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
    for m in messages:
        queue.put_nowait(m)
    latencies: list[float] = []
    replies: dict[str, int] = {}
    sent: dict[str, float] = {}
    errors: list[str] = []

    async def worker() -> None:
        while not queue.empty():
            tag, data = queue.get_nowait()
            start = time.perf_counter()
            try:
                reply = await asyncio.wait_for(
                    send_one("127.0.0.1", port, SENDER, RCPT, data, prepared=True), timeout
                )
            except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
                errors.append(f"{tag}: {exc!r}")
                continue
            latencies.append((time.perf_counter() - start) * 1000)
            code = reply_class(reply)
            replies[code] = replies.get(code, 0) + 1
            if code == "250":
                sent[tag] = time.time()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return {
        "seconds": time.perf_counter() - start,
        "latencies": latencies,
        "outcomes": replies,
        "errors": len(errors),
        "error_examples": errors[:3],
        "sent": sent,
    }


def listen_counters() -> dict[str, int]:
    """TcpExt ListenOverflows and ListenDrops of this network namespace."""
    lines = Path("/proc/net/netstat").read_text().splitlines()
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            table = dict(zip(names.split()[1:], map(int, values.split()[1:]), strict=True))
            return {k: table.get(k, 0) for k in ("ListenOverflows", "ListenDrops")}
    return {"ListenOverflows": 0, "ListenDrops": 0}


async def send_when_due(port: int, data: bytes, due: float, timeout: float) -> Any:
    """One transaction of an open-loop stream: it starts at `due` (event-loop time)
    whatever happened to the others, and times out `timeout` s after `due`."""
    loop = asyncio.get_running_loop()
    await asyncio.sleep(max(0.0, due - loop.time()))
    return await asyncio.wait_for(
        send_one("127.0.0.1", port, SENDER, RCPT, data, prepared=True),
        timeout - max(0.0, loop.time() - due),
    )


async def offered_round(
    port: int, messages: list[tuple[str, bytes]], rate: float, seconds: float, timeout: float
) -> dict[str, Any]:
    """Open loop: transaction i starts at t0 + i/rate whatever happened to the others."""
    count = int(rate * seconds)
    latencies: list[float] = []
    replies: dict[str, int] = {}
    timeouts = 0
    failures: list[str] = []
    loop = asyncio.get_running_loop()
    t0 = loop.time() + 0.2

    async def one(i: int) -> None:
        nonlocal timeouts
        due = t0 + i / rate
        _tag, data = messages[i % len(messages)]
        try:
            reply = await send_when_due(port, data, due, timeout)
        except TimeoutError:
            timeouts += 1
            return
        except (OSError, asyncio.IncompleteReadError) as exc:
            failures.append(repr(exc))
            return
        latencies.append((loop.time() - due) * 1000)
        code = reply_class(reply)
        replies[code] = replies.get(code, 0) + 1

    before = listen_counters()
    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(count)))
    elapsed = time.perf_counter() - started
    after = listen_counters()
    return {
        "offered_per_second": rate,
        "sent": count,
        "completed_per_second": round(len(latencies) / elapsed, 1),
        "latency_ms": _lat(latencies),
        "outcomes": replies,
        "client_timeouts": timeouts,
        "connection_failures": len(failures),
        "failure_examples": failures[:3],
        **{k: after[k] - before[k] for k in after},
    }


def _lat(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p99": None, "mean": None}
    return {
        "p50": percentile(values, 50),
        "p99": percentile(values, 99),
        "mean": round(statistics.fmean(values), 2),
    }


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds (user + system) of the gateway workers' event-loop threads (each
    process's main thread) and of all their other threads (pools, database writer,
    spool), read from /proc: a CPU-time sampler that needs nothing in the gateway."""
    from bench.relay import _children, threads_cpu

    out = {"event_loop_threads": 0.0, "other_threads": 0.0}
    workers = _children(pid)  # and each worker process: how evenly SO_REUSEPORT spreads
    out.update({f"worker_{n}": 0.0 for n in range(len(workers))})
    for proc, task, user, system in threads_cpu(pid):
        key = "event_loop_threads" if int(task) == proc else "other_threads"
        out[key] += user + system
        if proc in workers:
            out[f"worker_{workers.index(proc)}"] += user + system
    return out


def per_process(pid: int) -> dict[str, int]:
    """Resident memory (KiB) of the supervisor and of each of its children, apart."""
    from bench.relay import _children

    out = {"supervisor_kib": _rss(pid)}
    for n, child in enumerate(_children(pid)):
        out[f"child_{n}_kib"] = _rss(child)
    return out


def _rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_kib(pid: int) -> int:
    """Resident memory of a process and its children (KiB)."""
    from bench.relay import _children

    total = 0
    for task in [pid, *_children(pid)]:
        try:
            for line in Path(f"/proc/{task}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


async def memory_run(
    gateway: GatewayProcess, count: int, every: int, concurrency: int, timeout: float
) -> list[dict[str, Any]]:
    assert gateway.proc is not None
    body = b"Subject: m\r\nFrom: bench@sender.test\r\nTo: bob@example.test\r\n\r\n"
    body += b"A small message to watch the memory of the gateway over many mails.\r\n" * 8
    curve = [{"messages": 0, "rss_kib": rss_kib(gateway.proc.pid), **per_process(gateway.proc.pid)}]
    done = 0
    while done < count:
        batch = [
            (f"mem-{done + i}", wire_form(tagged(f"mem-{done + i}", body)))
            for i in range(min(every, count - done))
        ]
        await smtp_round(gateway.port, batch, concurrency, timeout)
        done += len(batch)
        curve.append(
            {
                "messages": done,
                "rss_kib": rss_kib(gateway.proc.pid),
                **per_process(gateway.proc.pid),
            }
        )
    return curve


# ---------------------------------------------------------------- running it


def summary(rounds: list[dict[str, Any]], cpu_key: str | None = None) -> dict[str, Any]:
    latencies = [v for r in rounds for v in r["latencies"]]
    counts = [len(r["latencies"]) for r in rounds]
    rates = [round(n / r["seconds"], 1) for n, r in zip(counts, rounds, strict=True)]
    outcomes: dict[str, int] = {}
    for r in rounds:
        for k, v in r["outcomes"].items():
            outcomes[k] = outcomes.get(k, 0) + v
    out: dict[str, Any] = {
        "messages_per_second": rates,
        "messages_per_second_mean": round(statistics.fmean(rates), 1),
        "latency_ms": _lat(latencies),
        "outcomes": outcomes,
        "errors": sum(r["errors"] for r in rounds),
    }
    for key in ("cpu_ms_per_message", "clamd_cpu_ms_per_message", "thread_cpu_ms_per_message"):
        values = [r[key] for r in rounds if key in r]
        if values:
            out[key] = values
    examples = [e for r in rounds for e in r.get("error_examples", [])]
    if examples:
        out["error_examples"] = examples[:3]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=3000, help="sample size (all corpora)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--processes", type=int, default=2, help="[smtp] processes")
    parser.add_argument("--rspamd-workers", type=int, default=2)
    parser.add_argument("--skip-rspamd", action="store_true")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="also run mailwarden from checkout DIR (alternating with this one)",
    )
    parser.add_argument("--rates", default="100,150", help="offered rates (msg/s); '' for none")
    parser.add_argument("--rate-seconds", type=float, default=20.0)
    parser.add_argument("--timeout", type=float, default=30.0, help="client time-out, seconds")
    parser.add_argument("--memory", type=int, default=0, help="messages for the memory curve")
    parser.add_argument("--memory-every", type=int, default=2000)
    parser.add_argument("--profile", metavar="FILE", help="py-spy on 'this' in round 1")
    parser.add_argument("--profile-mode", choices=sorted(PROFILE_MODES), default="gil")
    args = parser.parse_args()

    loaded = time.perf_counter()
    corpus = sample(args.messages)
    plain = [raw for _, raw in corpus]
    messages = prepare(plain, "m")
    load_seconds = time.perf_counter() - loaded
    variants = [Variant("this", REPO)]
    for spec in args.variant:
        name, _, path = spec.partition("=")
        variants.append(Variant(name, Path(path).resolve()))

    here, there = multiprocessing.Pipe()
    sink = multiprocessing.Process(target=run_sink, args=(there,), daemon=True)
    sink.start()
    sink_port = here.recv()
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp, LoopbackDns() as dns, ClamdServer() as clamd:
        dns.zone.add("sender.test", "TXT", f"v=spf1 ip4:127.0.0.1 ip4:{RSPAMD_IP} -all")
        dns.zone.add("_dmarc.sender.test", "TXT", "v=DMARC1; p=none")
        # the HELO and sender hosts resolve (A, AAAA, MX, PTR): rspamd's resolver waits out
        # its time-out on an empty answer without SOA, which this test server gives
        for host in ("sender.test", "load.test"):
            dns.zone.add(host, "A", RSPAMD_IP)
            dns.zone.add(host, "AAAA", "2001:db8::10")
            dns.zone.add(host, "MX", (10, "load.test."))
        dns.zone.add("10.2.0.192.in-addr.arpa", "PTR", "load.test.")
        for domain in ("spamhaus.org", "bit.ly", "geocities.com", "yahoo.com"):
            dns.zone.add(f"{domain}.uribl.bench.test", "A", "127.0.0.2")
        rspamd = None
        if not args.skip_rspamd:
            rspamd = Rspamd(Path(tmp) / "rspamd", dns.nameserver, args.rspamd_workers).start()
        try:
            for n, variant in enumerate(variants):
                directory = Path(tmp) / f"gw{n}"
                directory.mkdir()
                config = gateway_config(directory, sink_port, dns, clamd, args.processes)
                start_variant(variant, config)
                assert variant.gateway is not None
                asyncio.run(
                    smtp_round(variant.gateway.port, messages[:100], 4, args.timeout)
                )  # warm-up: model, lists, rules, caches
            if rspamd is not None:
                asyncio.run(rspamd_round(rspamd.port, plain[:100], 4))
            rspamd_rounds: list[dict[str, Any]] = []
            for round_no in range(args.rounds):
                if rspamd is not None and rspamd.proc is not None:
                    before = cpu_seconds(rspamd.proc.pid)
                    r = asyncio.run(rspamd_round(rspamd.port, plain, args.concurrency))
                    r["cpu_ms_per_message"] = round(
                        (cpu_seconds(rspamd.proc.pid) - before) / max(1, len(r["latencies"])) * 1e3,
                        2,
                    )
                    rspamd_rounds.append(r)
                for variant in variants:
                    gw = variant.gateway
                    assert gw is not None and gw.proc is not None and clamd.process is not None
                    batch = prepare(plain, f"{variant.name}-{round_no}-")
                    profiler = None
                    if args.profile and round_no == 0 and variant.name == "this":
                        profiler = start_profiler(gw.proc.pid, args.profile, args.profile_mode)
                    cpu0, clam0 = cpu_seconds(gw.proc.pid), cpu_seconds(clamd.process.pid)
                    threads0 = thread_cpu(gw.proc.pid)
                    r = asyncio.run(smtp_round(gw.port, batch, args.concurrency, args.timeout))
                    n_done = max(1, len(r["latencies"]))
                    threads1 = thread_cpu(gw.proc.pid)
                    r["thread_cpu_ms_per_message"] = {
                        k: round((threads1[k] - threads0.get(k, 0.0)) / n_done * 1e3, 2)
                        for k in threads1
                    }
                    r["cpu_ms_per_message"] = round(
                        (cpu_seconds(gw.proc.pid) - cpu0) / n_done * 1e3, 2
                    )
                    r["clamd_cpu_ms_per_message"] = round(
                        (cpu_seconds(clamd.process.pid) - clam0) / n_done * 1e3, 2
                    )
                    if profiler is not None:
                        profiler.send_signal(signal.SIGINT)
                        profiler.wait(60)
                    variant.rounds.append(r)
                    _drain(Path(tmp))
            result["rspamd"] = summary(rspamd_rounds) if rspamd_rounds else None
            for variant in variants:
                if variant.rounds:
                    result[f"mailwarden:{variant.name}"] = summary(variant.rounds)
            ratios: dict[str, Any] = {}
            for variant in variants:
                if rspamd_rounds:
                    ratios[f"{variant.name}/rspamd"] = [
                        round(
                            len(m["latencies"])
                            / m["seconds"]
                            / (len(r["latencies"]) / r["seconds"]),
                            3,
                        )
                        for m, r in zip(variant.rounds, rspamd_rounds, strict=True)
                    ]
                if variant is not variants[0] and variant.rounds:
                    ratios[f"this/{variant.name}"] = [
                        round(
                            len(a["latencies"])
                            / a["seconds"]
                            / (len(b["latencies"]) / b["seconds"]),
                            3,
                        )
                        for a, b in zip(variants[0].rounds, variant.rounds, strict=True)
                    ]
            result["throughput_ratios"] = ratios
            if rspamd is not None:
                rspamd.stop()
                rspamd = None
            rates = [float(x) for x in args.rates.split(",") if x.strip()]
            if rates:
                offered: dict[str, Any] = {}
                bare = asyncio.run(
                    offered_round(
                        sink_port, messages, rates[0], min(5.0, args.rate_seconds), args.timeout
                    )
                )
                offered["bare_sink"] = bare
                base = bare["latency_ms"]["p50"] or 0.0
                for variant in variants:
                    assert variant.gateway is not None
                    for rate in rates:
                        r = asyncio.run(
                            offered_round(
                                variant.gateway.port,
                                messages,
                                rate,
                                args.rate_seconds,
                                args.timeout,
                            )
                        )
                        p99 = r["latency_ms"]["p99"]
                        r["added_latency_p99_ms"] = None if p99 is None else round(p99 - base, 2)
                        offered[f"{variant.name}@{rate:g}"] = r
                        _drain(Path(tmp))
                result["offered"] = offered
            if args.memory:
                result["memory_rss_kib"] = {
                    v.name: asyncio.run(
                        memory_run(
                            v.gateway,
                            args.memory,
                            args.memory_every,
                            args.concurrency,
                            args.timeout,
                        )
                    )
                    for v in variants
                    if v.gateway is not None
                }
        finally:
            if rspamd is not None:
                rspamd.stop()
            for variant in variants:
                if variant.gateway is not None:
                    variant.gateway.stop()
    here.send("stop")
    here.recv()
    sink.terminate()
    head = {
        "benchmark": "chain",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()}",
        "python": platform.python_version(),
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        "sample": {
            "messages": len(messages),
            "corpora": list(CORPORA),
            "bytes_mean": round(statistics.fmean(len(d) for _, d in messages)),
            "bytes_p99": percentile([float(len(d)) for _, d in messages], 99),
            "read_seconds": round(load_seconds, 1),
        },
        "processes": args.processes,
        "rspamd_workers": args.rspamd_workers,
        "concurrency": args.concurrency,
        "rounds": args.rounds,
    }
    print(json.dumps({**head, **result}, indent=2))


def _drain(tmp: Path, seconds: float = 60.0) -> None:
    """Wait until the gateways' spools are empty (delivery caught up with intake)."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        if not list(tmp.glob("gw*/spool/**/queue/*.json")):
            return
        time.sleep(0.5)


if __name__ == "__main__":
    main()
