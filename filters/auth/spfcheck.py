"""SPF (RFC 7208) with pyspf, its DNS queries routed through our resolver.

pyspf resolves through a module-level hook, `spf.DNSLookup`. We install one
dispatcher that sends each query to the `BlockingLookups` of the check running
in the current thread (a context variable), so concurrent messages keep their
own budget and no query ever takes pyspf's default path.
"""

from __future__ import annotations

import contextvars
import ipaddress
import logging
from dataclasses import dataclass

import spf

from filters.auth.domains import ascii_domain
from gateway.adapters.dns import BlockingLookups

log = logging.getLogger(__name__)

RESULTS = ("pass", "fail", "softfail", "neutral", "none", "temperror", "permerror")

_current: contextvars.ContextVar[BlockingLookups | None] = contextvars.ContextVar(
    "mailwarden_spf_lookups", default=None
)


def _dispatch(name, qtype, strict=True, timeout=None):  # pyspf's signature
    lookups = _current.get()
    if lookups is None:
        raise spf.TempError("no resolver for this SPF check")
    return lookups.pyspf(name, qtype, strict, timeout)


spf.DNSLookup = _dispatch


class _Query(spf.query):
    """pyspf's query with one RFC 7208 rule it leaves to its DNS layer."""

    def validated_ptrs(self):
        """RFC 7208 5.5: a DNS error on a PTR name's address lookup skips that name.

        pyspf lets the TempError escape (temperror for the whole check); with a
        recursive resolver a CNAME loop or a broken zone behind a PTR name is
        exactly such an error, and it must not decide the sender's result.
        """
        limit = spf.MAX_PTR if self.strict else spf.MAX_PTR * 4
        valid = []
        for name in self.dns_ptr(self.i)[:limit]:
            try:
                addresses = self.dns_a(name, self.A)
            except spf.TempError:
                continue
            if self.cidrmatch(addresses, self.cidrmax):
                valid.append(name)
        return valid


@dataclass(frozen=True)
class SpfOutcome:
    """One SPF check_host() result for one identity."""

    result: str  # one of RESULTS
    identity: str  # "mailfrom" or "helo"
    domain: str  # the domain whose policy was checked ("" when there was none)
    sender: str  # the identity as checked (postmaster@helo for HELO)
    reason: str = ""  # pyspf's explanation or error text


def _run(lookups: BlockingLookups, ip: str, sender: str, helo: str, receiver: str):
    token = _current.set(lookups)
    try:
        q = _Query(
            i=ip, s=sender, h=helo, receiver=receiver, strict=True, timeout=3600, querytime=0
        )
        result, _code, explanation = q.check()
        return result, explanation
    finally:
        _current.reset(token)


def _valid_ip(ip: str) -> bool:
    try:
        ipaddress.ip_address(ip)
    except ValueError:
        return False
    return True


def check_mailfrom(
    lookups: BlockingLookups, ip: str, mail_from: str, helo: str, receiver: str
) -> SpfOutcome:
    """The MAIL FROM identity; for the null sender, the HELO identity (RFC 7208 2.4)."""
    if not mail_from:
        return check_helo(lookups, ip, helo, receiver)
    local, _, domain = mail_from.rpartition("@")
    local = local or "postmaster"  # RFC 7208 4.3
    adomain = ascii_domain(domain)
    if adomain is None:
        # RFC 7208 4.3: a malformed domain gives "none" without any lookup
        return SpfOutcome("none", "mailfrom", "", mail_from, "not a valid domain")
    return _check(lookups, ip, f"{local}@{adomain}", helo, receiver, "mailfrom", adomain)


def check_helo(lookups: BlockingLookups, ip: str, helo: str, receiver: str) -> SpfOutcome:
    """The HELO identity; an address literal or a bare word gives "none" (RFC 7208 2.3)."""
    domain = ascii_domain(helo) if helo and not helo.startswith("[") else None
    if domain is None:
        return SpfOutcome("none", "helo", "", helo, "HELO is not a domain name")
    return _check(lookups, ip, f"postmaster@{domain}", domain, receiver, "helo", domain)


def _check(
    lookups: BlockingLookups,
    ip: str,
    sender: str,
    helo: str,
    receiver: str,
    identity: str,
    domain: str,
) -> SpfOutcome:
    if not _valid_ip(ip):
        return SpfOutcome("none", identity, domain, sender, "no valid client IP address")
    try:
        result, explanation = _run(lookups, ip, sender, helo, receiver)
    except Exception as exc:  # noqa: BLE001 - a library bug must not break the session
        log.warning("SPF check of %s from %s failed: %r", sender, ip, exc)
        return SpfOutcome("permerror", identity, domain, sender, f"SPF check failed: {exc}")
    if result not in RESULTS:  # pre-RFC 7208 names, defensive
        result = {"unknown": "permerror", "error": "temperror"}.get(result, "permerror")
    return SpfOutcome(result, identity, domain, sender, explanation or "")
