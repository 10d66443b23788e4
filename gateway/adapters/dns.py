"""The one DNS client of the gateway, pointable at any server.

Everything that resolves names (SPF, DKIM, DMARC, DNSBL, URIBL, MX for bounces)
goes through a `Resolver`, so one `[dns]` section decides where queries go and
how long each may take, and one cache (`dns_cache`) keeps every answer, positive
or negative, for all of them. Queries from the event loop share one UDP socket
(`dns_client.UdpClient`); the blocking libraries in worker threads (pyspf,
dkimpy) read the same cache and ask on their own only when it has no answer.
Answers are returned as plain values; a failure is one of two exceptions so
callers can map it to their own temperror/none symbols.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dns.name
import dns.resolver

from gateway.adapters.dns_cache import Answer, AnswerCache, Entry, Negative
from gateway.adapters.dns_client import QueryTimeout, ServerFailed, UdpClient, blocking_query
from gateway.config import DnsSettings, parse_host_port


class DnsError(Exception):
    """A lookup could not be answered (timeout, SERVFAIL, no server): try again later."""


class NoRecord(Exception):
    """The name or the record type does not exist (NXDOMAIN or NODATA).

    A name that cannot exist in the DNS at all (a label over 63 octets, an empty
    label, text that has no IDNA form) is reported the same way: asking again
    later cannot help, so it is not a DnsError.
    """


_INVALID_NAME = (
    dns.name.LabelTooLong,
    dns.name.NameTooLong,
    dns.name.EmptyLabel,
    dns.name.IDNAException,
    UnicodeError,
)


def _nameservers(settings: DnsSettings) -> list[tuple[str, int]]:
    """Parse ["127.0.0.1:5353"] or ["192.0.2.1"] into [(address, port)]; the system's
    servers (/etc/resolv.conf) when none are configured."""
    if not settings.nameservers:
        system = dns.resolver.Resolver(configure=True)
        return [(str(host), system.port) for host in system.nameservers]
    servers, ports = [], set()
    for entry in settings.nameservers:
        if entry.count(":") == 1 or entry.startswith("["):
            host, port = parse_host_port(entry)
        else:
            host, port = entry, 53
        servers.append((host, port))
        ports.add(port)
    if len(ports) != 1:
        raise ValueError("dns.nameservers: all servers must use the same port")
    return servers


def _result(entry: Entry, name: str, rdtype: str) -> Answer:
    if isinstance(entry, Negative):
        kind = "NXDOMAIN" if entry.nxdomain else "NoAnswer"
        raise NoRecord(f"{name}/{rdtype}: {kind}")
    return entry


@contextmanager
def _lookup_errors(name: str, rdtype: str) -> Iterator[None]:
    """The client's failures as the adapter's: DnsError (worth a retry later) or
    NoRecord (a name the DNS cannot hold: no retry helps)."""
    try:
        yield
    except QueryTimeout:
        raise DnsError(f"{name}/{rdtype}: timeout") from None
    except ServerFailed as exc:
        raise DnsError(f"{name}/{rdtype}: no server answered ({exc})") from None
    except _INVALID_NAME as exc:
        raise NoRecord(
            f"{name!r}/{rdtype}: not a valid DNS name ({exc.__class__.__name__})"
        ) from None


class Budget:
    """One message's DNS time: every query gets min(per-query timeout, time left).

    SPF, DKIM and DMARC share one budget per message, so a sender whose records
    make us wait (slow servers, long include chains) costs at most `seconds`, and
    each check then answers temperror instead of holding the SMTP session.
    """

    def __init__(self, seconds: float, per_query: float) -> None:
        self.per_query = per_query
        self.deadline = time.monotonic() + seconds

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def timeout(self, name: str = "") -> float:
        """The timeout for the next query; DnsError once the budget is spent."""
        left = self.remaining()
        if left <= 0.001:
            raise DnsError(f"{name}: DNS budget for this message exhausted")
        return min(self.per_query, left)


class BlockingLookups:
    """Blocking, budgeted queries for libraries that run in a worker thread.

    pyspf and dkimpy resolve names themselves; these methods are their hooks
    (`pyspf` for `spf.DNSLookup`, `dkim_txt` for dkimpy's `dnsfunc`), so their
    queries go to the configured servers under the message's budget and never
    through dnspython's deprecated module-level `query`.
    """

    def __init__(self, resolver: Resolver, budget: Budget) -> None:
        self.resolver = resolver
        self.budget = budget
        # what the event loop already asked for this message and could not get
        # (time-outs): asked again here, it would only spend the budget twice
        self.failed: dict[tuple[str, str], DnsError] = {}

    def resolve(self, name: str, rdtype: str) -> Answer:
        """One query (the cache first); NoRecord or DnsError on failure."""
        entry = self.resolver.cache.get(name, rdtype)
        if entry is None:
            known = self.failed.get((name.lower(), rdtype))
            if known is not None:
                raise known
            timeout = self.budget.timeout(name)
            entry = self.resolver.ask_blocking(name, rdtype, timeout)
        return _result(entry, name, rdtype)

    def txt(self, name: str) -> list[bytes]:
        """Each TXT record's strings joined, as bytes."""
        return [b"".join(r.strings) for r in self.resolve(name, "TXT")]

    def pyspf(self, name: str, qtype: str, strict: Any = True, timeout: Any = None) -> list:
        """pyspf's DNSLookup: [((name, qtype), value)]; TempError on failure.

        Values as pyspf's own dnspython driver gives them: addresses as text,
        MX as (preference, host), PTR and CNAME as host, TXT as a tuple of bytes.
        """
        import spf

        try:
            answer = self.resolve(name, qtype)
        except NoRecord:
            return []
        except DnsError as exc:
            raise spf.TempError(f"DNS {exc}") from None
        out: list = []
        for rdata in answer:
            if qtype in ("A", "AAAA"):
                value: Any = rdata.address
            elif qtype == "MX":
                value = (rdata.preference, rdata.exchange.to_text(omit_final_dot=True))
            elif qtype in ("PTR", "CNAME"):
                value = rdata.target.to_text(omit_final_dot=True)
            elif qtype in ("TXT", "SPF"):
                value = tuple(rdata.strings)
            else:
                continue
            out.append(((name, qtype), value))
        return out

    def dkim_txt(self, name: bytes | str, timeout: Any = None) -> bytes | None:
        """dkimpy's dnsfunc: the first TXT record as bytes, None when absent.

        A failure raises dkim.DnsTimeoutError, which dkimpy expects; callers
        that must tell temperror from fail look the key up themselves first.
        """
        import dkim

        if isinstance(name, bytes):
            try:
                name = name.decode("ascii")
            except UnicodeDecodeError:
                return None
        try:
            records = self.txt(name)
        except NoRecord:
            return None
        except DnsError as exc:
            raise dkim.DnsTimeoutError(str(exc)) from None
        return records[0] if records else None


class Resolver:
    """Async lookups with one timeout per query; values as text or bytes.

    The event loop's queries and the blocking ones (pyspf, dkimpy) share one
    answer cache, each answer kept for its TTL: a sender's SPF, DKIM and DMARC
    records, a list's answer for an address, are asked for once, not once per
    message or per filter.
    """

    def __init__(self, settings: DnsSettings) -> None:
        self.settings = settings
        self.servers = _nameservers(settings)
        self.cache = AnswerCache(settings.cache_size)
        self._client = UdpClient(self.servers)

    def blocking(self, budget: Budget) -> BlockingLookups:
        """Budgeted blocking lookups for a worker thread (pyspf, dkimpy)."""
        return BlockingLookups(self, budget)

    def budget(self, seconds: float | None = None) -> Budget:
        """A fresh per-message budget ([dns] budget and timeout unless told)."""
        return Budget(seconds or self.settings.budget, self.settings.timeout)

    def ask_blocking(self, name: str, rdtype: str, timeout: float) -> Entry:
        """A query from a worker thread, past the cache; the answer is cached."""
        with _lookup_errors(name, rdtype):
            entry = blocking_query(self.servers, name, rdtype, timeout)
        self.cache.put(name, rdtype, entry)
        return entry

    async def resolve(self, name: str, rdtype: str, timeout: float | None = None) -> Answer:
        """The answer (the cache first); NoRecord or DnsError."""
        entry = self.cache.get(name, rdtype)
        if entry is None:
            with _lookup_errors(name, rdtype):
                entry = await self._client.query(name, rdtype, timeout or self.settings.timeout)
            self.cache.put(name, rdtype, entry)
        return _result(entry, name, rdtype)

    async def prefetch(self, lookups: BlockingLookups, questions: list[tuple[str, str]]) -> None:
        """Ask `questions` together, so the worker thread that needs them next finds
        them in the cache; a time-out is noted in `lookups` and not asked again."""

        async def one(name: str, rdtype: str) -> None:
            try:
                await self.resolve(name, rdtype, lookups.budget.timeout(name))
            except NoRecord:
                pass
            except DnsError as exc:
                lookups.failed[(name.lower(), rdtype)] = exc

        unique = list(dict.fromkeys((n, t) for n, t in questions if n))
        if unique and self.cache.size:  # without a cache the threads would ask again
            await asyncio.gather(*(one(n, t) for n, t in unique))

    async def txt(self, name: str, timeout: float | None = None) -> list[bytes]:
        """Each TXT record's strings joined, as bytes."""
        answer = await self.resolve(name, "TXT", timeout)
        return [b"".join(r.strings) for r in answer]

    async def addresses(
        self, name: str, rdtype: str = "A", timeout: float | None = None
    ) -> list[str]:
        answer = await self.resolve(name, rdtype, timeout)
        return [r.address for r in answer]

    async def addresses_ttl(
        self, name: str, rdtype: str = "A", timeout: float | None = None
    ) -> tuple[list[str], int]:
        """Addresses and the seconds the answer has left (for caches that must honour it)."""
        answer = await self.resolve(name, rdtype, timeout)
        return [r.address for r in answer], answer.ttl()

    async def mx(self, name: str, timeout: float | None = None) -> list[tuple[int, str]]:
        """(preference, host) sorted by preference."""
        answer = await self.resolve(name, "MX", timeout)
        return sorted((r.preference, r.exchange.to_text(omit_final_dot=True)) for r in answer)

    async def ptr(self, ip: str, timeout: float | None = None) -> list[str]:
        import dns.reversename

        answer = await self.resolve(dns.reversename.from_address(ip).to_text(), "PTR", timeout)
        return [r.target.to_text(omit_final_dot=True) for r in answer]
