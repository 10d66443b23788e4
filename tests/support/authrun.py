"""Run the auth filter the way the pipeline does: lookup once, evaluate per domain."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from filters.auth import AuthEvidence, AuthFilter
from filters.base import Scope
from gateway.adapters import Ports
from gateway.adapters.dns import Resolver
from gateway.config import DnsSettings
from gateway.domain_policy import DomainPolicy
from gateway.model import FilterResult, MessageContext

AUTHSERV_ID = "mx.local.test"


@dataclass
class AuthRun:
    evidence: AuthEvidence
    result: FilterResult

    @property
    def names(self) -> set[str]:
        return {s.name for s in self.result.symbols}

    def options(self, name: str) -> tuple[str, ...]:
        return next(s.options for s in self.result.symbols if s.name == name)

    @property
    def header(self) -> str:
        return dict(self.result.headers)["Authentication-Results"]


class AuthHarness:
    def __init__(self, nameserver: str, timeout: float = 1.0, budget: float = 4.0) -> None:
        # no answer cache: these tests change records between runs and count queries
        settings = DnsSettings(
            nameservers=[nameserver], timeout=timeout, budget=budget, cache_size=0
        )
        self.ports = Ports(dns=Resolver(settings))
        self.filter = AuthFilter(AUTHSERV_ID)

    def run(self, ctx: MessageContext, dmarc: str = "honour") -> AuthRun:
        evidence = asyncio.run(self.filter.lookup(ctx, self.ports))
        scope = Scope("local.test", DomainPolicy("local.test", dmarc=dmarc))
        return AuthRun(evidence, self.filter.evaluate(ctx, evidence, scope))
