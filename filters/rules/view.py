"""What a rule condition can look at, computed lazily from the message.

Most rules test the subject or a sender; the body text, the URL list and the
attachment list are only extracted when a rule asks for them, and once per
message even when several recipient domains are decided.
"""

from __future__ import annotations

import email.utils
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

from gateway.address import domain_of, local_part
from gateway.lazy import cached_property
from gateway.mail.mime import url_domain
from gateway.model import FilterResult, MessageContext


@dataclass(frozen=True)
class Attachment:
    name: str  # "" when the part has no file name
    content_type: str  # as declared by the sender
    size: int  # bytes after transfer decoding


def local_of(address: str) -> str:
    return local_part(address).lower()


class MessageFacts:
    """Message-level facts, shared by every recipient domain's evaluation."""

    def __init__(self, ctx: MessageContext) -> None:
        self.ctx = ctx
        self._headers: dict[str, list[str]] = {}

    @cached_property
    def subject(self) -> str:
        return " ".join(self.header("subject"))

    @cached_property
    def body(self) -> str:
        return self.ctx.body_text

    @cached_property
    def attachments(self) -> tuple[Attachment, ...]:
        return tuple(
            Attachment(p.filename or "", p.content_type, len(p.payload))
            for p in self.ctx.parts
            if not p.is_text
        )

    @cached_property
    def urls(self) -> tuple[str, ...]:
        return self.ctx.urls

    @cached_property
    def url_hosts(self) -> tuple[str, ...]:
        hosts = (url_domain(u) for u in self.urls)
        return tuple(dict.fromkeys(h for h in hosts if h))

    @cached_property
    def from_addresses(self) -> tuple[str, ...]:
        pairs = email.utils.getaddresses(self.header("from"))
        return tuple(addr.lower() for _, addr in pairs if addr)

    @cached_property
    def client_ip(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        try:
            ip = ipaddress.ip_address(self.ctx.envelope.client_ip)
        except ValueError:
            return None
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
            return ip.ipv4_mapped
        return ip

    def header(self, name: str) -> list[str]:
        """Decoded values of a header field; parsed once per name (email's header
        parsing is the costliest part of a rule run)."""
        key = name.lower()
        values = self._headers.get(key)
        if values is None:
            values = self._headers[key] = self.ctx.header(name)
        return values


_last: tuple[MessageContext, MessageFacts] | None = None


def facts_for(ctx: MessageContext) -> MessageFacts:
    """The facts of ctx, reused while the same message is being decided."""
    global _last
    last = _last
    if last is not None and last[0] is ctx:
        return last[1]
    facts = MessageFacts(ctx)
    _last = (ctx, facts)
    return facts


class MessageView:
    """One recipient domain's view: the message facts plus that domain's context."""

    def __init__(
        self, ctx: MessageContext, domain: str, results: Mapping[str, FilterResult]
    ) -> None:
        self.facts = facts_for(ctx)
        self.envelope = ctx.envelope
        self.domain = domain.lower()
        self.results = results
        self.size = len(ctx.raw)
        self.symbols: set[str] = {s.name for r in results.values() for s in r.symbols}

    @cached_property
    def recipients(self) -> tuple[str, ...]:
        """The envelope recipients in the domain being decided."""
        return tuple(r.lower() for r in self.envelope.rcpt_tos if domain_of(r) == self.domain)

    @property
    def probability(self) -> float | None:
        result = self.results.get("classifier")
        value = result.facts.get("probability") if result is not None else None
        return float(value) if isinstance(value, int | float) else None
