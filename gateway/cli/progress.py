"""Progress of a long job as plain lines on stderr, terminal or not; none with --quiet.

A job run from cron or under `nohup` writes to a file, where a redrawn bar is one
endless line of carriage returns; so every few seconds one line says how far it has
come, and the end says how long it took. `MAILWARDEN_PROGRESS_SECONDS` sets the
interval (default 5 s).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import TextIO

ENV = "MAILWARDEN_PROGRESS_SECONDS"
DEFAULT_SECONDS = 5.0


def add_quiet_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--quiet", "-q", action="store_true", help="no progress lines on standard error"
    )


def _interval() -> float:
    try:
        return max(0.0, float(os.environ.get(ENV, DEFAULT_SECONDS)))
    except ValueError:
        return DEFAULT_SECONDS


class Progress:
    """`update(n)` as work is done; a line when the interval has passed; `close()` ends."""

    def __init__(
        self,
        job: str,
        what: str,
        unit: str = "msg",
        total: int | None = None,
        quiet: bool = False,
        stream: TextIO | None = None,
    ) -> None:
        self.job, self.what, self.unit, self.total = job, what, unit, total
        self.quiet = quiet
        self.stream = stream
        self.every = _interval()
        self.done = 0
        self.started = self.last = time.monotonic()
        self.closed = False

    def update(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            self._line(now, final=False)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._line(time.monotonic(), final=True)

    def abandon(self) -> None:
        """The job failed: its error says so, no closing line."""
        self.closed = True

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, kind: object, *exc: object) -> None:
        if kind is not None:
            self.abandon()
        self.close()

    def _line(self, now: float, final: bool) -> None:
        if self.quiet:
            return
        spent = now - self.started
        of = f"/{self.total}" if self.total is not None else ""
        rate = f", {self.done / spent:.0f} {self.unit}/s" if spent > 0 and self.done else ""
        state = f"done in {spent:.1f}s" if final else f"{spent:.0f}s"
        stream = self.stream or sys.stderr
        print(
            f"mailwarden {self.job}: {self.what} {self.done}{of} {self.unit}{rate}, {state}",
            file=stream,
            flush=True,
        )
