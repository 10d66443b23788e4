"""Several gateway processes on one node, sharing the listening port.

One Python process uses one core (the GIL). With `[smtp] processes = N`, a
supervisor starts N complete gateways (SMTP in, pipeline, delivery) that bind
the same address with SO_REUSEPORT, so the kernel spreads connections over
them. Each has its own spool directory `<spool.path>/w<i>`; on start a worker
adopts the jobs of directories nobody else owns (a previous run with more or
fewer processes), so a change of N loses nothing. Children die with the
supervisor (PR_SET_PDEATHSIG): a killed supervisor leaves no orphan listening.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

from gateway.config import Settings

log = logging.getLogger(__name__)

RESTART_DELAY = 1.0
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the supervisor's SIGTERM still works
        pass


def _child(
    settings: Settings, index: int, count: int, ready, log_level: int, config: Path | None
) -> None:
    _die_with_parent()
    from gateway.app.run import run_gateway
    from gateway.monitor import logsetup

    logsetup.configure(settings.log.format, log_level, worker=index)
    logging.getLogger("mail.log").setLevel(max(log_level, logging.WARNING))
    run_gateway(settings, worker=(index, count), ready=ready, config=config)


def supervise(settings: Settings, count: int, log_level: int, config: Path | None = None) -> int:
    """Run `count` workers until SIGTERM/SIGINT; restart any that dies on its own;
    SIGHUP is passed on to every worker (each reloads from `config`)."""
    context = multiprocessing.get_context("spawn")
    stopping = False

    def stop(signum, frame) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    workers: list = []

    def hangup(signum, frame) -> None:
        for process, _ in workers:
            if process.pid is not None and process.is_alive():
                os.kill(process.pid, signal.SIGHUP)

    signal.signal(signal.SIGHUP, hangup)

    def start(index: int):
        ready = context.Event()
        process = context.Process(
            target=_child,
            args=(settings, index, count, ready, log_level, config),
            name=f"mailwarden-w{index}",
        )
        process.start()
        return process, ready

    metrics = _Metrics(settings) if settings.metrics.listen else None
    try:
        workers[:] = [start(i) for i in range(count)]
        for process, ready in workers:
            while not ready.wait(0.1):
                if not process.is_alive() or stopping:
                    return _shutdown(workers, settings, code=2 if not stopping else 0)
        if metrics is not None:
            host, port = metrics.start()
            print(f"mailwarden metrics on http://{host}:{port}/metrics", flush=True)
        print(f"mailwarden listening on {settings.smtp.listen} ({count} processes)", flush=True)
        while not stopping:
            time.sleep(0.2)
            for i, (process, _) in enumerate(workers):
                if not process.is_alive() and not stopping:
                    log.error("worker %d exited with %s; restarting it", i, process.exitcode)
                    if metrics is not None and process.pid is not None:
                        metrics.process_dead(process.pid)
                    time.sleep(RESTART_DELAY)
                    workers[i] = start(i)
        return _shutdown(workers, settings, code=0)
    finally:
        if metrics is not None:
            metrics.close()


class _Metrics:
    """prometheus_client's multiprocess mode for this run: a fresh directory whose
    path the workers inherit (PROMETHEUS_MULTIPROC_DIR, set before they start), and
    the one endpoint that adds their files up. Removed when the run ends, so no
    count of an earlier run is ever added in."""

    def __init__(self, settings: Settings) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="mailwarden-metrics-"))
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(self.dir)
        self.settings = settings
        self.endpoint: Any = None  # an exporter.MetricsEndpoint once started

    def start(self) -> tuple[str, int]:
        from gateway.app.exporter import MetricsEndpoint

        endpoint = MetricsEndpoint(self.settings, multiprocess_dir=self.dir)
        self.endpoint = endpoint
        return endpoint.start()

    def process_dead(self, pid: int) -> None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid, str(self.dir))

    def close(self) -> None:
        if self.endpoint is not None:
            self.endpoint.stop()
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        shutil.rmtree(self.dir, ignore_errors=True)


def _shutdown(workers, settings: Settings, code: int) -> int:
    for process, _ in workers:
        if process.is_alive():
            process.terminate()  # SIGTERM: each stops gracefully
    deadline = time.monotonic() + settings.smtp.shutdown_grace + 15
    for process, _ in workers:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join()
    return code
