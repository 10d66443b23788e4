"""The one DNS client of the gateway (dnspython), pointable at any server.

Everything that resolves names (SPF, DKIM, DMARC, DNSBL, MX for bounces) goes
through a `Resolver`, so one `[dns]` section decides where queries go and how
long each may take. Answers are returned as plain values; a failure is one of
three exceptions so callers can map it to their own temperror/none symbols.
"""

from __future__ import annotations

import time
from typing import Any

import dns.asyncresolver
import dns.exception
import dns.name
import dns.resolver

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


def _nameservers(settings: DnsSettings) -> tuple[list[str], int] | None:
    """Parse ["127.0.0.1:5353"] or ["192.0.2.1"] into (addresses, port)."""
    if not settings.nameservers:
        return None
    hosts, ports = [], set()
    for entry in settings.nameservers:
        if entry.count(":") == 1 or entry.startswith("["):
            host, port = parse_host_port(entry)
        else:
            host, port = entry, 53
        hosts.append(host)
        ports.add(port)
    if len(ports) != 1:
        raise ValueError("dns.nameservers: all servers must use the same port")
    return hosts, ports.pop()


def _configure(
    resolver: dns.resolver.BaseResolver,
    settings: DnsSettings,
    cache: dns.resolver.LRUCache | None = None,
) -> None:
    resolver.timeout = settings.timeout
    resolver.lifetime = settings.timeout
    resolver.cache = cache
    servers = _nameservers(settings)
    if servers:
        resolver.nameservers, resolver.port = servers


def make_sync_resolver(
    settings: DnsSettings, cache: dns.resolver.LRUCache | None = None
) -> dns.resolver.Resolver:
    """A blocking resolver for libraries that need one (pyspf, dkimpy) in a thread."""
    configure = not settings.nameservers
    resolver = dns.resolver.Resolver(configure=configure)
    _configure(resolver, settings, cache)
    return resolver


def _classify(exc: Exception, name: str, rdtype: str) -> Exception:
    """Map a dnspython failure to NoRecord (will not change) or DnsError (try later)."""
    if isinstance(exc, dns.resolver.NXDOMAIN | dns.resolver.NoAnswer):
        return NoRecord(f"{name}/{rdtype}: {exc.__class__.__name__}")
    if isinstance(exc, _INVALID_NAME):
        return NoRecord(f"{name!r}/{rdtype}: not a valid DNS name ({exc.__class__.__name__})")
    if isinstance(exc, dns.exception.Timeout):
        return DnsError(f"{name}/{rdtype}: timeout")
    if isinstance(exc, dns.resolver.NoNameservers):
        return DnsError(f"{name}/{rdtype}: no server answered ({exc})")
    if isinstance(exc, dns.exception.DNSException | ValueError | OSError):
        return DnsError(f"{name}/{rdtype}: {exc}")
    raise exc


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

    def __init__(self, resolver: dns.resolver.Resolver, budget: Budget) -> None:
        self.resolver = resolver
        self.budget = budget

    def resolve(self, name: str, rdtype: str) -> dns.resolver.Answer:
        """One query; NoRecord or DnsError on failure."""
        timeout = self.budget.timeout(name)
        try:
            return self.resolver.resolve(name, rdtype, lifetime=timeout, search=False)
        except Exception as exc:  # noqa: BLE001 - mapped to NoRecord / DnsError
            raise _classify(exc, name, rdtype) from None

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

    The async resolver and the blocking one (pyspf, dkimpy) share one answer cache
    (dnspython's, thread-safe, each answer kept for its TTL): a sender's SPF, DKIM
    and DMARC records are asked for once, not once per message.
    """

    def __init__(self, settings: DnsSettings) -> None:
        self.settings = settings
        cache = dns.resolver.LRUCache(settings.cache_size) if settings.cache_size else None
        self._resolver = dns.asyncresolver.Resolver(configure=not settings.nameservers)
        _configure(self._resolver, settings, cache)
        self.sync = make_sync_resolver(settings, cache)

    def blocking(self, budget: Budget) -> BlockingLookups:
        """Budgeted blocking lookups for a worker thread (pyspf, dkimpy)."""
        return BlockingLookups(self.sync, budget)

    def budget(self, seconds: float | None = None) -> Budget:
        """A fresh per-message budget ([dns] budget and timeout unless told)."""
        return Budget(seconds or self.settings.budget, self.settings.timeout)

    async def _resolve(self, name: str, rdtype: str, timeout: float | None) -> dns.resolver.Answer:
        try:
            return await self._resolver.resolve(
                name, rdtype, lifetime=timeout or self.settings.timeout, search=False
            )
        except Exception as exc:  # noqa: BLE001 - every failure becomes one of two errors
            raise _classify(exc, name, rdtype) from None

    async def txt(self, name: str, timeout: float | None = None) -> list[bytes]:
        """Each TXT record's strings joined, as bytes."""
        answer = await self._resolve(name, "TXT", timeout)
        return [b"".join(r.strings) for r in answer]

    async def addresses(
        self, name: str, rdtype: str = "A", timeout: float | None = None
    ) -> list[str]:
        answer = await self._resolve(name, rdtype, timeout)
        return [r.address for r in answer]

    async def addresses_ttl(
        self, name: str, rdtype: str = "A", timeout: float | None = None
    ) -> tuple[list[str], int]:
        """Addresses and the answer's TTL in seconds (for caches that must honour it)."""
        answer = await self._resolve(name, rdtype, timeout)
        ttl = answer.rrset.ttl if answer.rrset is not None else 0
        return [r.address for r in answer], int(ttl)

    async def mx(self, name: str, timeout: float | None = None) -> list[tuple[int, str]]:
        """(preference, host) sorted by preference."""
        answer = await self._resolve(name, "MX", timeout)
        return sorted((r.preference, r.exchange.to_text(omit_final_dot=True)) for r in answer)

    async def ptr(self, ip: str, timeout: float | None = None) -> list[str]:
        import dns.reversename

        answer = await self._resolve(dns.reversename.from_address(ip).to_text(), "PTR", timeout)
        return [r.target.to_text(omit_final_dot=True) for r in answer]
