"""The Filter protocol: I/O in `lookup`, decisions in a pure `evaluate`.

A filter carries no scores (weights are configuration, per domain). The pipeline
runs every filter's lookup concurrently under one time budget per message, then
calls `evaluate` once per recipient domain, in chain order, so a later filter
(custom rules) can read the results of earlier ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from gateway.adapters import Ports
from gateway.domain_policy import DomainPolicy
from gateway.model import FilterResult, MessageContext, OnError


@dataclass(frozen=True)
class Scope:
    """What `evaluate` may depend on besides the message and its own evidence."""

    domain: str  # the recipient domain being decided for
    policy: DomainPolicy  # that domain's thresholds, weights and settings
    results: Mapping[str, FilterResult] = field(default_factory=dict)  # earlier filters


@runtime_checkable
class Filter(Protocol):
    name: str
    on_error: OnError

    async def lookup(self, ctx: MessageContext, ports: Ports) -> Any:
        """Gather evidence (DNS, clamd, Redis...). The only place a filter does I/O."""
        ...

    def evaluate(self, ctx: MessageContext, evidence: Any, scope: Scope) -> FilterResult:
        """Turn evidence into symbols; pure and cheap, called once per recipient domain."""
        ...

    # Optional: `failure(reason) -> FilterResult` for a filter that owns what a failed or
    # timed-out lookup means (its own symbol and error policy); otherwise the pipeline
    # gives it `NAME_ERROR` and `on_error` (gateway.pipeline.run.failure_result).
    # Optional: `reads_parts_only = True` for a filter that reads no more of the message
    # than its MIME parts (no text, no links): a chain of only such filters is not given
    # the text and the URLs ahead of the lookups (gateway.pipeline.run).


class NoLookup:
    """Mixin for filters that need no I/O."""

    on_error: OnError = OnError.CONTINUE

    async def lookup(self, ctx: MessageContext, ports: Ports) -> None:
        return None
