"""The one DNS answer cache of a gateway process: positive and negative answers.

Every lookup (SPF, DKIM, DMARC, DNSBL, URIBL, MX for delivery), from the event
loop or from a worker thread, goes through one `AnswerCache`, so a name asked for
by two filters or two messages is asked once per TTL. Negative answers (NXDOMAIN,
no record of the type) are kept for the SOA's negative TTL (RFC 2308: the lesser
of the SOA's TTL and its minimum field), capped; failures (timeouts, SERVFAIL)
are never kept.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

MAX_TTL = 86_400  # a day: a record changed at its owner is seen by tomorrow at the latest
MAX_NEGATIVE_TTL = 900  # RFC 2308 suggests 1-3 hours at most; a new record shows in 15 min
NXDOMAIN = "*"  # the type under which "this name does not exist" is kept: it covers all


@dataclass(frozen=True, slots=True)
class Answer:
    """The records of one answer (dnspython rdata objects) and when it expires."""

    records: tuple[Any, ...]
    expires: float  # time.monotonic()

    def __iter__(self) -> Any:
        return iter(self.records)

    def ttl(self) -> int:
        """Seconds left, for callers that keep the answer themselves."""
        return max(0, int(self.expires - time.monotonic()))


@dataclass(frozen=True, slots=True)
class Negative:
    """The name does not exist (NXDOMAIN) or has no record of the type (NODATA)."""

    nxdomain: bool
    expires: float


Entry = Answer | Negative


class AnswerCache:
    """A bounded LRU of answers, safe to share between the event loop and threads."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._data: OrderedDict[tuple[str, str], Entry] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key(name: str, rdtype: str) -> tuple[str, str]:
        return name.lower().rstrip("."), rdtype

    def get(self, name: str, rdtype: str) -> Entry | None:
        """The live entry for (name, type), or the name's NXDOMAIN; None when unknown."""
        if not self.size:
            return None
        now = time.monotonic()
        with self._lock:
            for k in (self.key(name, rdtype), self.key(name, NXDOMAIN)):
                entry = self._data.get(k)
                if entry is None:
                    continue
                if entry.expires <= now:
                    del self._data[k]
                    continue
                self._data.move_to_end(k)
                return entry
        return None

    def put(self, name: str, rdtype: str, entry: Entry) -> None:
        if not self.size or entry.expires <= time.monotonic():
            return
        k = self.key(name, NXDOMAIN if isinstance(entry, Negative) and entry.nxdomain else rdtype)
        with self._lock:
            self._data[k] = entry
            self._data.move_to_end(k)
            while len(self._data) > self.size:
                self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)
