"""The one DNS client of the gateway (dnspython), pointable at any server.

Everything that resolves names (SPF, DKIM, DMARC, DNSBL, MX for bounces) goes
through a `Resolver`, so one `[dns]` section decides where queries go and how
long each may take. Answers are returned as plain values; a failure is one of
three exceptions so callers can map it to their own temperror/none symbols.
"""

from __future__ import annotations

import dns.asyncresolver
import dns.exception
import dns.name
import dns.resolver

from gateway.config import DnsSettings, parse_host_port


class DnsError(Exception):
    """A lookup could not be answered (timeout, SERVFAIL, no server): try again later."""


class NoRecord(Exception):
    """The name or the record type does not exist (NXDOMAIN or NODATA)."""


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


def _configure(resolver: dns.resolver.BaseResolver, settings: DnsSettings) -> None:
    resolver.timeout = settings.timeout
    resolver.lifetime = settings.timeout
    resolver.cache = None
    servers = _nameservers(settings)
    if servers:
        resolver.nameservers, resolver.port = servers


def make_sync_resolver(settings: DnsSettings) -> dns.resolver.Resolver:
    """A blocking resolver for libraries that need one (pyspf, dkimpy) in a thread."""
    configure = not settings.nameservers
    resolver = dns.resolver.Resolver(configure=configure)
    _configure(resolver, settings)
    return resolver


class Resolver:
    """Async lookups with one timeout per query; values as text or bytes."""

    def __init__(self, settings: DnsSettings) -> None:
        self.settings = settings
        self._resolver = dns.asyncresolver.Resolver(configure=not settings.nameservers)
        _configure(self._resolver, settings)
        self.sync = make_sync_resolver(settings)

    async def _resolve(self, name: str, rdtype: str, timeout: float | None) -> dns.resolver.Answer:
        try:
            return await self._resolver.resolve(
                name, rdtype, lifetime=timeout or self.settings.timeout, search=False
            )
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer) as exc:
            raise NoRecord(f"{name}/{rdtype}: {exc.__class__.__name__}") from None
        except (dns.exception.Timeout, dns.resolver.LifetimeTimeout):
            raise DnsError(f"{name}/{rdtype}: timeout") from None
        except dns.resolver.NoNameservers as exc:
            raise DnsError(f"{name}/{rdtype}: no server answered ({exc})") from None
        except (dns.exception.DNSException, ValueError) as exc:
            raise DnsError(f"{name}/{rdtype}: {exc}") from None

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
