"""Cost of the monitoring on the SMTP path: one verdict event (metrics + log record).

What a gateway process pays per message for `gateway.monitor.events.verdict`:
building the event, moving the Prometheus counters, handing the record to the log
queue, and the writer thread making and writing the line. `cpu_us_per_message` is
the CPU time of both threads (the GIL makes it the core's cost, whatever the load);
`caller_wall_us_per_message` is the wall time of the caller, noisy on a busy machine.
Runs in-process mode and prometheus_client's multiprocess mode ([smtp] processes > 1),
each in a child. Prints JSON. Not a test.
"""

from __future__ import annotations

import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

N = 20_000


def _verdict():
    from gateway.model import (
        Action,
        Decision,
        Envelope,
        FilterResult,
        MessageContext,
        Reply,
        ScoredSymbol,
        Symbol,
    )
    from gateway.pipeline.run import Verdict

    env = Envelope("alice@sender.test", ("bob@example.test", "carol@example.test"), "192.0.2.7")
    raw = (
        b"From: a@sender.test\r\nMessage-ID: <x@sender.test>\r\nSubject: hi\r\n\r\n" + b"x" * 10_000
    )
    ctx = MessageContext("66198F5FC4B467F794C18", env, raw, datetime.now(UTC))
    symbols = tuple(ScoredSymbol(f"SYM_{i}", 1.5, ("opt",)) for i in range(12))
    decisions = tuple(
        Decision(r, Action.TAG, 18.0, symbols, ("score 18.00",), Reply(250, "2.0.0", "Ok"))
        for r in env.rcpt_tos
    )
    results = {"example.test": {"auth": FilterResult(symbols=(Symbol("SPF_PASS"),))}}
    timings = {"message": 0.1, "auth": 3.2, "rules": 0.4, "evaluate": 0.5, "total": 4.5}
    return Verdict(ctx, results, decisions, timings)


def measure(fmt: str) -> dict:
    from gateway.monitor import events, logsetup

    sink = io.StringIO()
    logsetup.configure(fmt, 30, stream=sink)  # WARNING: only the events are logged
    verdict = _verdict()
    started, cpu = time.perf_counter(), time.process_time()
    for _ in range(N):
        events.verdict(verdict, "accepted", "250 2.0.0 Ok")
    on_loop = time.perf_counter() - started
    logsetup.stop()  # waits until the listener has written every line
    cpu = time.process_time() - cpu  # both threads: what the process's core pays
    lines = sink.getvalue().count("\n")
    assert lines == N, lines
    return {
        "format": fmt,
        "multiprocess": "PROMETHEUS_MULTIPROC_DIR" in os.environ,
        "messages": N,
        "cpu_us_per_message": round(cpu / N * 1e6, 1),
        "caller_wall_us_per_message": round(on_loop / N * 1e6, 1),
        "line_bytes": round(len(sink.getvalue()) / N),
    }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        print(json.dumps(measure(sys.argv[2])))
        return
    out = []
    for fmt in ("json", "text"):
        child = subprocess.run(
            [sys.executable, __file__, "--child", fmt], capture_output=True, text=True, check=True
        )
        out.append(json.loads(child.stdout))
        with tempfile.TemporaryDirectory() as directory:
            env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=directory)
            child = subprocess.run(
                [sys.executable, __file__, "--child", fmt],
                capture_output=True,
                text=True,
                check=True,
                env=env,
            )
            out.append(json.loads(child.stdout))
    print(
        json.dumps(
            {
                "bench": "log_events",
                "machine": f"{platform.machine()} {os.cpu_count()} cpus",
                "python": platform.python_version(),
                "date": datetime.now(UTC).date().isoformat(),
                "load_avg_1m": os.getloadavg()[0],
                "results": out,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
