"""Does one slow message hold up everyone else's? Small messages' latency while a big one
goes through the full chain, against the same stream without it.

The gateway is bench/chain.py's: `mailwarden serve` with every filter on (SPF/DKIM/DMARC
against a loopback DNS server, DNSBL/URIBL, lists, rules, classifier, a clamd started
here, the fsynced spool, the SQLite ledger, delivery to a counting sink), but with
`[smtp] processes = 1` by default, so the big message and the small ones share one
event loop and one worker pool: the worst case.

Three phases, each an open-loop stream of small real messages (bench/chain.py's sample)
at `--rate` per second for `--seconds`:

- `baseline`: the stream alone;
- `with_big`: the same stream, and one big message (`--big-mb`, built here: a text part,
  an HTML part with many links and a base64 attachment) sent `--big-after` s into it;
  the small messages' latency is reported for the whole phase and for those that were
  in flight while the big one was (from its first byte to its final reply);
- the big message's own time to its final reply.

A loop held by the big message shows as a small-message p99/max in `while_big` near the
big message's own time; work kept off the loop shows as a p99 near the baseline's.
Prints JSON. Not a test.

    .venv/bin/python bench/slow_message.py [--big-mb 20] [--rate 20] [--seconds 12]
    .venv/bin/python bench/slow_message.py --checkout /path/to/older/checkout
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.chain import (
    RCPT,
    SENDER,
    Variant,
    _lat,
    gateway_config,
    prepare,
    reply_class,
    sample,
    send_when_due,
    start_variant,
)
from bench.relay import cpu_seconds, run_sink
from bench.smtpload import send_one, wire_form
from tests.support.clamd import ClamdServer
from tests.support.dnsserver import LoopbackDns

REPO = Path(__file__).resolve().parents[1]


def big_message(megabytes: float, seed: int = 5) -> bytes:
    """A multipart message of about `megabytes`: a third plain text, a third HTML with a
    link every 40 bytes or so, a third a base64 attachment of random bytes (what makes a
    message slow here: MIME decoding, HTML-to-text, URL extraction, the classifier's
    text, clamd's scan of the attachment)."""
    rng = random.Random(seed)
    third = int(megabytes * 1024 * 1024 / 3)
    words = [
        "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9)))
        for _ in range(2000)
    ]
    text_lines: list[str] = []
    size = 0
    while size < third:
        line = " ".join(rng.choice(words) for _ in range(12))
        text_lines.append(line)
        size += len(line) + 2
    html_lines: list[str] = []
    size = 0
    n = 0
    while size < third:
        n += 1
        host = f"host{n % 997}.example{n % 13}.test"
        line = f'<p>{rng.choice(words)} <a href="http://{host}/p/{n}">{rng.choice(words)}</a></p>'
        html_lines.append(line)
        size += len(line) + 2
    blob = base64.encodebytes(rng.randbytes(third * 3 // 4)).decode("ascii")
    body = "\r\n".join(
        [
            f"From: {SENDER}",
            f"To: {RCPT}",
            "Subject: a big message",
            "Message-ID: <big-1@sender.test>",
            "Date: Mon, 07 Dec 2026 12:00:00 +0000",
            "MIME-Version: 1.0",
            'Content-Type: multipart/mixed; boundary="b1"',
            "",
            "--b1",
            "Content-Type: text/plain; charset=us-ascii",
            "",
            *text_lines,
            "--b1",
            "Content-Type: text/html; charset=us-ascii",
            "",
            "<html><body>",
            *html_lines,
            "</body></html>",
            "--b1",
            'Content-Type: application/octet-stream; name="data.bin"',
            "Content-Transfer-Encoding: base64",
            'Content-Disposition: attachment; filename="data.bin"',
            "",
            blob.replace("\n", "\r\n").rstrip("\r\n"),
            "--b1--",
            "",
        ]
    )
    return body.encode("ascii")


async def stream(
    port: int,
    messages: list[tuple[str, bytes]],
    rate: float,
    seconds: float,
    big: bytes | None,
    big_after: float,
    timeout: float,
) -> dict[str, Any]:
    """Open loop of small messages; with `big`, one big message `big_after` s in."""
    loop = asyncio.get_running_loop()
    t0 = loop.time() + 0.2
    done: list[tuple[float, float]] = []  # (due, finished) in loop time
    outcomes: dict[str, int] = {}
    timeouts = 0
    big_span: dict[str, Any] = {}

    async def small(i: int) -> None:
        nonlocal timeouts
        due = t0 + i / rate
        _tag, data = messages[i % len(messages)]
        try:
            reply = await send_when_due(port, data, due, timeout)
        except TimeoutError:
            timeouts += 1
            return
        done.append((due, loop.time()))
        code = reply_class(reply)
        outcomes[code] = outcomes.get(code, 0) + 1

    async def large(data: bytes) -> None:
        await asyncio.sleep(max(0.0, t0 + big_after - loop.time()))
        # from another process: preparing and writing 20 MB would stall this loop's clients
        with ProcessPoolExecutor(1) as pool:
            started, ended, reply = await loop.run_in_executor(
                pool, _send_big, port, data, timeout * 4
            )
        big_span.update(start=started, end=ended, reply=reply_class(reply))

    tasks = [small(i) for i in range(int(rate * seconds))]
    if big is not None:
        tasks.append(large(big))
    await asyncio.gather(*tasks)
    result: dict[str, Any] = {
        "small_sent": int(rate * seconds),
        "small_outcomes": outcomes,
        "small_timeouts": timeouts,
        "small_latency_ms": _lat([(end - due) * 1000 for due, end in done]),
    }
    if big_span:
        overlapping = [
            (end - due) * 1000
            for due, end in done
            if end >= big_span["start"] and due <= big_span["end"]
        ]
        result["small_while_big_in_flight"] = {"count": len(overlapping), **_lat(overlapping)}
        result["big_ms"] = round((big_span["end"] - big_span["start"]) * 1000, 1)
        result["big_reply"] = big_span["reply"]
    return result


def _send_big(port: int, data: bytes, timeout: float) -> tuple[float, float, bytes]:
    """Send one message; its start and end on the monotonic clock (the same clock as the
    event loop's `time()` in the parent)."""
    started = time.monotonic()
    reply = asyncio.run(
        asyncio.wait_for(send_one("127.0.0.1", port, SENDER, RCPT, data, prepared=True), timeout)
    )
    return started, time.monotonic(), reply


def _profiler(pid: int, output: str) -> subprocess.Popen:
    """py-spy on the gateway and its workers, GIL holder only, each sample tagged with its
    thread: a stack on a worker's main thread is time its event loop was held."""
    exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    command = [exe, "record", "--pid", str(pid), "--subprocesses", "--gil", "--nonblocking"]
    command += ["--threads", "--format", "raw", "--rate", "200", "--output", output]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    return proc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--big-mb", type=float, default=20.0)
    parser.add_argument("--big-after", type=float, default=2.0)
    parser.add_argument("--rate", type=float, default=20.0, help="small messages a second")
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--processes", type=int, default=1, help="[smtp] processes")
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument(
        "--checkout", metavar="DIR", help="run the gateway from this checkout (e.g. older code)"
    )
    parser.add_argument(
        "--profile", metavar="FILE", help="py-spy (GIL holder, per thread) during with_big"
    )
    args = parser.parse_args()

    messages = prepare([raw for _, raw in sample(400)], "s")
    big = wire_form(big_message(args.big_mb))
    here, there = multiprocessing.Pipe()
    sink = multiprocessing.Process(target=run_sink, args=(there,), daemon=True)
    sink.start()
    sink_port = here.recv()
    out: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "load_before": os.getloadavg(),
        "settings": vars(args) | {"big_bytes": len(big)},
    }
    with tempfile.TemporaryDirectory() as tmp, LoopbackDns() as dns, ClamdServer() as clamd:
        dns.zone.add("sender.test", "TXT", "v=spf1 ip4:127.0.0.1 -all")
        dns.zone.add("_dmarc.sender.test", "TXT", "v=DMARC1; p=none")
        directory = Path(tmp) / "gw"
        directory.mkdir()
        variant = Variant("this", Path(args.checkout).resolve() if args.checkout else REPO)
        start_variant(variant, gateway_config(directory, sink_port, dns, clamd, args.processes))
        gw = variant.gateway
        assert gw is not None and gw.proc is not None
        try:
            asyncio.run(stream(gw.port, messages[:60], 10, 3, None, 0, args.timeout))  # warm-up
            for phase, with_big in (("baseline", False), ("with_big", True)):
                cpu0 = cpu_seconds(gw.proc.pid)
                profiler = None
                if args.profile and with_big:
                    profiler = _profiler(gw.proc.pid, args.profile)
                out[phase] = asyncio.run(
                    stream(
                        gw.port,
                        messages,
                        args.rate,
                        args.seconds,
                        big if with_big else None,
                        args.big_after,
                        args.timeout,
                    )
                )
                out[phase]["gateway_cpu_s"] = round(cpu_seconds(gw.proc.pid) - cpu0, 2)
                if profiler is not None:
                    profiler.send_signal(signal.SIGINT)
                    profiler.wait(60)
        finally:
            gw.stop()
            sink.terminate()
    out["load_after"] = os.getloadavg()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
