"""Local block and allow lists as pure data: entries, value parsing, matching.

An entry lists one IP, network (CIDR), sender address, sender domain or HELO
name, for every domain ("" = global) or one recipient domain, with why, who,
when and an optional expiry. `ListSnapshot` answers "is this client/sender
blocked or allowed for this domain?" in time independent of the list size
(a published list can hold hundreds of thousands of networks).

Precedence: a domain's own entries come before global ones (a domain admin's
choice affects only their domain), and at the same level allow beats block.
Sender domains cover their subdomains.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from gateway.address import domain_of

LISTS = ("block", "allow")
KINDS = ("ip", "cidr", "sender", "sender_domain", "helo")
GLOBAL = ""

_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.)+[a-z0-9-]{2,63}$")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Entry:
    list: str  # block | allow
    kind: str  # one of KINDS
    value: str  # normalised (see parse_value)
    domain: str = GLOBAL  # the recipient domain it applies to; "" for all
    reason: str = ""
    added_by: str = ""
    added_at: datetime | None = None
    expires_at: datetime | None = None
    source: str = ""  # "" for entries added by hand, else the import source's name
    id: int | None = None

    def active(self, now: datetime) -> bool:
        return self.expires_at is None or self.expires_at > now

    def describe(self) -> str:
        kind = {"sender_domain": "sender domain", "cidr": "network", "helo": "HELO"}.get(
            self.kind, self.kind.upper() if self.kind == "ip" else self.kind
        )
        return f"{kind} {self.value}"


def _ip(text: str) -> IPAddress:
    address = ipaddress.ip_address(text.strip().strip("[]"))
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def normalise_domain(text: str) -> str:
    domain = text.strip().lower().rstrip(".")
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            raise ValueError(f"{text!r} is not a domain name") from None
    if not _DOMAIN.match(domain):
        raise ValueError(f"{text!r} is not a domain name")
    return domain


def guess_kind(text: str) -> str:
    """ip, cidr, sender or sender_domain from the look of a value (HELO must be asked for)."""
    value = text.strip()
    if "/" in value:
        return "cidr"
    if ":" in value or re.fullmatch(r"[\d.\[\]]+", value):
        return "ip"  # even when malformed, so the error says "not an IP address"
    if "@" in value.lstrip("@"):
        return "sender"
    return "sender_domain"


def parse_value(text: str, kind: str | None = None) -> tuple[str, str]:
    """(kind, normalised value), or ValueError with a plain explanation."""
    value = text.strip()
    if not value:
        raise ValueError("empty value")
    kind = kind or guess_kind(value)
    if kind == "ip":
        try:
            return "ip", str(_ip(value))
        except ValueError:
            raise ValueError(f"{value!r} is not an IP address") from None
    if kind == "cidr":
        try:
            network = ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise ValueError(f"{value!r} is not a network like 192.0.2.0/24") from None
        return "cidr", str(network)
    if kind == "sender":
        local, at, domain = value.rpartition("@")
        if not at or not local or any(c.isspace() for c in local):
            raise ValueError(f"{value!r} is not an e-mail address")
        return "sender", f"{local.lower()}@{normalise_domain(domain)}"
    if kind == "sender_domain":
        return "sender_domain", normalise_domain(value.lstrip("@").removeprefix("*."))
    if kind == "helo":
        if any(c.isspace() for c in value) or len(value) > 255:
            raise ValueError(f"{value!r} is not a HELO name")
        return "helo", value.lower()
    raise ValueError(f"unknown kind {kind!r} (expected one of: {', '.join(KINDS)})")


def _network_key(value: str) -> tuple[int, int, int]:
    """(version, prefix length, network as int) of a normalised IP or network; IPv4
    is parsed by hand because ipaddress takes most of a 100,000-entry reload."""
    address, _, prefix = value.partition("/")
    if ":" not in address:
        try:
            number = int.from_bytes(socket.inet_aton(address), "big")
            length = int(prefix) if prefix else 32
            if address.count(".") == 3 and 0 <= length <= 32:
                return 4, length, number >> (32 - length) << (32 - length) if length else 0
        except (OSError, ValueError):
            pass
    network = ipaddress.ip_network(value, strict=False)
    return network.version, network.prefixlen, int(network.network_address)


class _Level:
    """One list (block or allow) of one domain level, indexed for matching."""

    def __init__(self) -> None:
        self.exact: dict[str, dict[str, list[Entry]]] = {k: {} for k in KINDS if k != "cidr"}
        # networks grouped by (version, prefix length) -> network int -> entries
        self.networks: dict[tuple[int, int], dict[int, list[Entry]]] = {}
        self._order: list[tuple[int, int]] | None = None  # most specific first

    def add(self, entry: Entry) -> None:
        if entry.kind in ("ip", "cidr"):
            version, prefix, number = _network_key(entry.value)
            bucket = self.networks.setdefault((version, prefix), {})
            self._order = None
            bucket.setdefault(number, []).append(entry)
        else:
            self.exact[entry.kind].setdefault(entry.value, []).append(entry)

    def match(self, ip: IPAddress | None, sender: str, helo: str, now: datetime) -> Entry | None:
        if ip is not None:
            width = 32 if ip.version == 4 else 128
            number = int(ip)
            # most specific network first, so the reason shown is the closest entry
            if self._order is None:
                self._order = sorted(self.networks, key=lambda k: -k[1])
            for version, prefix in self._order:
                if version != ip.version:
                    continue
                masked = number >> (width - prefix) << (width - prefix) if prefix else 0
                found = _first_active(self.networks[(version, prefix)].get(masked), now)
                if found:
                    return found
        if sender:
            found = _first_active(self.exact["sender"].get(sender), now)
            if found:
                return found
            domain = domain_of(sender)
            while domain:
                found = _first_active(self.exact["sender_domain"].get(domain), now)
                if found:
                    return found
                domain = domain.partition(".")[2]
        if helo:
            return _first_active(self.exact["helo"].get(helo), now)
        return None


def _first_active(entries: list[Entry] | None, now: datetime) -> Entry | None:
    for entry in entries or ():
        if entry.active(now):
            return entry
    return None


@dataclass(frozen=True)
class ListHit:
    list: str  # block | allow
    entry: Entry


class ListSnapshot:
    """Every entry, indexed; immutable once built (a reload builds a new one)."""

    def __init__(self, entries: Iterable[Entry] = (), version: object = None) -> None:
        self.version = version
        self.count = 0
        self._levels: dict[tuple[str, str], _Level] = {}
        for entry in entries:
            self._levels.setdefault((entry.domain, entry.list), _Level()).add(entry)
            self.count += 1

    def judge(
        self,
        domain: str,
        now: datetime,
        ip: str | None = None,
        sender: str = "",
        helo: str = "",
    ) -> ListHit | None:
        """The entry deciding for this client and sender in `domain`, if any."""
        address = None
        if ip:
            try:
                address = _ip(ip)
            except ValueError:
                address = None
        sender = sender.strip().strip("<>").lower()
        helo = helo.strip().lower()
        for level in (domain.lower(), GLOBAL):
            for name in ("allow", "block"):
                table = self._levels.get((level, name))
                if table is None:
                    continue
                entry = table.match(address, sender, helo, now)
                if entry is not None:
                    return ListHit(name, entry)
            if level == GLOBAL:
                break
        return None
