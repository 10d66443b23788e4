"""A failing part is logged once when it starts failing and once when it recovers.

The scanner, the database, Redis and the next hop each report every call's result
here; only the changes reach the log (at WARNING, naming the part, its address and
the error), not one line per message, and not only under -v.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

log = logging.getLogger("mailwarden.outage")


@dataclass
class _Down:
    since: float
    failures: int
    error: str


class Outages:
    """Process-wide state: which parts are failing since when (thread-safe)."""

    def __init__(self, logger: logging.Logger = log) -> None:
        self._log = logger
        self._down: dict[tuple[str, str], _Down] = {}
        self._lock = threading.Lock()

    def failed(self, part: str, target: str, error: object) -> None:
        with self._lock:
            down = self._down.get((part, target))
            if down is not None:
                down.failures += 1
                return
            self._down[(part, target)] = _Down(time.monotonic(), 1, str(error))
        self._log.warning("%s %s is failing: %s", part, target, error)

    def ok(self, part: str, target: str) -> None:
        if not self._down:  # the common case: nothing is down, no lock taken
            return
        with self._lock:
            down = self._down.pop((part, target), None)
        if down is not None:
            self._log.warning(
                "%s %s answers again after %.0f s (%d failed call(s); first error: %s)",
                part, target, time.monotonic() - down.since, down.failures, down.error,
            )  # fmt: skip

    def failing(self) -> list[tuple[str, str]]:
        with self._lock:
            return sorted(self._down)


OUTAGES = Outages()
