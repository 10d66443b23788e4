"""What one relayed message costs the event loop, counted: `python bench/loop_counts.py`.

Runs the gateway in this process (the relay alone: built-in message checks, SQLite
ledger, fsynced spool) on asyncio's own event loop with its scheduling calls counted
(tasks by coroutine, call_soon, timers, futures, thread hand-offs), a counting sink in
another process and bench/relay.py's 16 clients of 10 KB messages; prints JSON with
the counts per message and the Python function calls per message on the loop's
thread (cProfile). Counts, not times: they do not depend on the machine's load, so
two checkouts compare exactly (`--code DIR` runs another checkout's package).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import cProfile
import json
import multiprocessing
import pstats
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

COUNTED = ("call_soon", "call_at", "call_soon_threadsafe", "create_future", "run_in_executor")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--code", help="a checkout whose gateway package is measured")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(args.code or Path(__file__).resolve().parents[1]).resolve()))

    import logging

    from bench.relay import run_clients, run_sink
    from gateway.app.server import Gateway
    from gateway.config import load_settings
    from gateway.monitor import logsetup
    from gateway.pipeline.chain import FILTER_NAMES
    from tests.support.gateway import write_config

    counts: collections.Counter[str] = collections.Counter()
    tasks: collections.Counter[str] = collections.Counter()
    on = [False]

    class CountingLoop(asyncio.SelectorEventLoop):
        pass

    def counted(name: str) -> None:
        original = getattr(asyncio.SelectorEventLoop, name)

        def call(self: Any, *a: Any, **k: Any) -> Any:
            if on[0]:
                counts[name] += 1
            return original(self, *a, **k)

        setattr(CountingLoop, name, call)

    for name in COUNTED:
        counted(name)

    def task_factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task:
        if on[0]:
            tasks[getattr(coro, "__qualname__", type(coro).__name__)] += 1
        return asyncio.Task(coro, loop=loop, **kwargs)

    here, there = multiprocessing.Pipe()
    sink = multiprocessing.Process(target=run_sink, args=(there,), daemon=True)
    sink.start()
    sink_port = here.recv()
    devnull = open("/dev/null", "w")  # noqa: SIM115 - the log's writer thread uses it to the end
    logsetup.configure("text", logging.INFO, stream=devnull)
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    n = args.messages
    profile = cProfile.Profile()
    with tempfile.TemporaryDirectory() as tmp:
        extra: dict[str, dict[str, Any]] = {
            "smtp": {"max_sessions_per_ip": 200, "max_sessions_per_network": 200},
            "pipeline": {"disable": [f for f in FILTER_NAMES if f != "message"]},
        }
        config = write_config(Path(tmp), f"127.0.0.1:{sink_port}", extra)
        gateway = Gateway(load_settings(config))
        loop = CountingLoop()
        loop.set_task_factory(task_factory)
        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()

        def call(coro: Any) -> Any:
            return asyncio.run_coroutine_threadsafe(coro, loop).result(60)

        call(gateway.start())
        port = gateway.address[1]
        asyncio.run(run_clients(port, 100, 16, 10240, "warm"))
        time.sleep(1.0)  # the warm-up's deliveries
        loop.call_soon_threadsafe(profile.enable)
        on[0] = True
        asyncio.run(run_clients(port, n, 16, 10240, "run"))
        time.sleep(1.5)  # this run's deliveries
        on[0] = False
        stopped = threading.Event()
        loop.call_soon_threadsafe(lambda: (profile.disable(), stopped.set()))
        stopped.wait(10)
        call(gateway.stop())
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
    here.send("stop")
    here.recv()
    sink.terminate()
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    python_calls = sum(row[1] for row in stats.values())
    print(
        json.dumps(
            {
                "benchmark": "loop_counts",
                "code": args.code or "this checkout",
                "messages": n,
                "per_message": {
                    "tasks": round(sum(tasks.values()) / n, 2),
                    **{name: round(counts[name] / n, 2) for name in COUNTED},
                    "python_calls_on_the_loop_thread": round(python_calls / n),
                },
                "tasks_by_coroutine": {k: round(v / n, 2) for k, v in tasks.most_common()},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
