"""Compiled rule conditions: small immutable objects answering `test(view)`.

They are built only by filters.rules.lang from a validated file, so they never
see bad input; every pattern inside is an RE2 program (linear time).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from filters.rules.view import MessageView, domain_of, local_of


class Condition(Protocol):
    def test(self, view: MessageView) -> bool: ...


# --- text --------------------------------------------------------------------------


@dataclass(frozen=True)
class Matches:
    regex: Any  # an RE2 program
    pattern: str

    def __call__(self, text: str) -> bool:
        return self.regex.search(text) is not None


@dataclass(frozen=True)
class Contains:
    needles: tuple[str, ...]  # casefolded

    def __call__(self, text: str) -> bool:
        folded = text.casefold()
        return any(n in folded for n in self.needles)


@dataclass(frozen=True)
class Equals:
    values: frozenset[str]  # casefolded

    def __call__(self, text: str) -> bool:
        return text.strip().casefold() in self.values


@dataclass(frozen=True)
class StartsWith:
    prefixes: tuple[str, ...]

    def __call__(self, text: str) -> bool:
        return text.casefold().startswith(self.prefixes)


@dataclass(frozen=True)
class EndsWith:
    suffixes: tuple[str, ...]

    def __call__(self, text: str) -> bool:
        return text.strip().casefold().endswith(self.suffixes)


@dataclass(frozen=True)
class TextTest:
    """Every operation must hold (an empty test holds for any text)."""

    ops: tuple[Callable[[str], bool], ...]

    def __call__(self, text: str) -> bool:
        return all(op(text) for op in self.ops)


@dataclass(frozen=True)
class DomainMatch:
    """A domain or any of its subdomains ("partner.test" covers "mx.partner.test")."""

    domains: tuple[str, ...]

    def __call__(self, domain: str) -> bool:
        domain = domain.lower().rstrip(".")
        return any(domain == d or domain.endswith("." + d) for d in self.domains)


# --- combinators -------------------------------------------------------------------


@dataclass(frozen=True)
class All:
    conditions: tuple[Condition, ...]

    def test(self, view: MessageView) -> bool:
        return all(c.test(view) for c in self.conditions)


@dataclass(frozen=True)
class AnyOf:
    conditions: tuple[Condition, ...]

    def test(self, view: MessageView) -> bool:
        return any(c.test(view) for c in self.conditions)


@dataclass(frozen=True)
class Not:
    condition: Condition

    def test(self, view: MessageView) -> bool:
        return not self.condition.test(view)


# --- leaves ------------------------------------------------------------------------


@dataclass(frozen=True)
class Subject:
    text: TextTest

    def test(self, view: MessageView) -> bool:
        return self.text(view.facts.subject)


@dataclass(frozen=True)
class Body:
    text: TextTest

    def test(self, view: MessageView) -> bool:
        return self.text(view.facts.body)


@dataclass(frozen=True)
class Helo:
    text: TextTest

    def test(self, view: MessageView) -> bool:
        return self.text(view.envelope.helo)


@dataclass(frozen=True)
class Header:
    name: str
    text: TextTest | None
    exists: bool | None

    def test(self, view: MessageView) -> bool:
        values = view.facts.header(self.name)
        if self.exists is not None and bool(values) != self.exists:
            return False
        if self.text is None:
            return True
        return any(self.text(v) for v in values)


@dataclass(frozen=True)
class AddressTest:
    addresses: frozenset[str] | None = None
    domain: DomainMatch | None = None
    local: frozenset[str] | None = None
    text: TextTest | None = None

    def __call__(self, address: str) -> bool:
        address = address.lower()
        if self.addresses is not None and address not in self.addresses:
            return False
        if self.domain is not None and not self.domain(domain_of(address)):
            return False
        if self.local is not None and local_of(address) not in self.local:
            return False
        return self.text is None or self.text(address)


@dataclass(frozen=True)
class Sender:
    """The envelope sender (MAIL FROM); "" for the null sender."""

    address: AddressTest

    def test(self, view: MessageView) -> bool:
        return self.address(view.envelope.mail_from)


@dataclass(frozen=True)
class HeaderFrom:
    address: AddressTest

    def test(self, view: MessageView) -> bool:
        return any(self.address(a) for a in view.facts.from_addresses)


@dataclass(frozen=True)
class Recipient:
    """Any envelope recipient of the domain being decided."""

    address: AddressTest

    def test(self, view: MessageView) -> bool:
        return any(self.address(a) for a in view.recipients)


@dataclass(frozen=True)
class AttachmentTest:
    """Every given property must hold for one and the same attachment."""

    name: TextTest | None = None
    extensions: frozenset[str] | None = None
    types: tuple[str, ...] | None = None  # "application/pdf" or "application/*"
    type_text: TextTest | None = None
    size_over: int | None = None
    size_under: int | None = None

    def test(self, view: MessageView) -> bool:
        return any(self._one(a) for a in view.facts.attachments)

    def _one(self, attachment: Any) -> bool:
        if self.name is not None and not self.name(attachment.name):
            return False
        if self.extensions is not None:
            base, dot, ext = attachment.name.rpartition(".")
            if not dot or not base or ext.lower() not in self.extensions:
                return False
        ctype = attachment.content_type.lower()
        if self.types is not None and not any(
            ctype == t or (t.endswith("/*") and ctype.startswith(t[:-1])) for t in self.types
        ):
            return False
        if self.type_text is not None and not self.type_text(ctype):
            return False
        if self.size_over is not None and not attachment.size > self.size_over:
            return False
        return self.size_under is None or attachment.size < self.size_under


@dataclass(frozen=True)
class Url:
    """Any URL in the body (text or HTML links) with the given domain and/or text."""

    domain: DomainMatch | None = None
    text: TextTest | None = None

    def test(self, view: MessageView) -> bool:
        if self.text is None:
            assert self.domain is not None
            return any(self.domain(h) for h in view.facts.url_hosts)
        from gateway.mail.mime import url_domain

        for url in view.facts.urls:
            if self.domain is not None and not self.domain(url_domain(url) or ""):
                continue
            if self.text(url):
                return True
        return False


@dataclass(frozen=True)
class SymbolPresent:
    """A symbol from an earlier filter, or from an earlier rule of the same file."""

    names: frozenset[str]

    def test(self, view: MessageView) -> bool:
        return not self.names.isdisjoint(view.symbols)


@dataclass(frozen=True)
class Classifier:
    """The spam probability of the filter named "classifier"; false when it did not run."""

    above: float | None = None
    below: float | None = None

    def test(self, view: MessageView) -> bool:
        p = view.probability
        if p is None:
            return False
        if self.above is not None and not p > self.above:
            return False
        return self.below is None or p < self.below


@dataclass(frozen=True)
class ClientIp:
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]

    def test(self, view: MessageView) -> bool:
        ip = view.facts.client_ip
        return ip is not None and any(ip in n for n in self.networks if n.version == ip.version)


@dataclass(frozen=True)
class Size:
    over: int | None = None
    under: int | None = None

    def test(self, view: MessageView) -> bool:
        if self.over is not None and not view.size > self.over:
            return False
        return self.under is None or view.size < self.under
