"""One message through the filter chain: lookups, evaluation, policy.

Lookups (all the I/O) run concurrently under one time budget per message; a
lookup still running when the budget ends counts as that filter's error and
its `on_error` decides (tempfail the message or go on without it). Evaluation
and policy are pure and run once per recipient domain / recipient. The server
and `mailwarden scan` both call `Pipeline.run`: one code path.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from filters.base import Filter, NoLookup, Scope
from gateway.adapters import Ports
from gateway.address import domain_of
from gateway.domain_policy import PolicyBook
from gateway.model import (
    AvPolicy,
    FilterResult,
    Force,
    ForceKind,
    MessageContext,
    OnError,
    Symbol,
    Verdict,
)
from gateway.pipeline.decide import decide

log = logging.getLogger(__name__)

# Every message is read (parts, text, URLs) before the lookups, which run on the event
# loop; above this size in a worker thread, below it on the loop, where the hop would
# cost more than the parse. A 20 MB message read on the loop held every session of its
# process for 8-12 s (bench/slow_message.py, docs/performance.md).
READ_AHEAD_BYTES = 64 * 1024

AvPolicyLoader = Callable[[Sequence[str]], Awaitable[Mapping[str, AvPolicy]]]


@dataclass(frozen=True)
class LookupFailure:
    reason: str


def failure_result(filt: Filter, reason: str) -> FilterResult:
    """A failed lookup: an error symbol, and a tempfail if the filter demands one.

    A filter that owns its failure (its own symbol and error policy, as the antivirus
    filter does) says so with a `failure(reason)` method; the rest get `NAME_ERROR`."""
    own = getattr(filt, "failure", None)
    if own is not None:
        result: FilterResult = own(reason)
        return result
    force = None
    if filt.on_error == OnError.TEMPFAIL:
        force = Force(ForceKind.TEMPFAIL, f"{filt.name}: {reason}", filt.name)
    symbol = Symbol(f"{filt.name.upper()}_ERROR", (reason,))
    return FilterResult(symbols=(symbol,), force=force, error=reason)


class Pipeline:
    def __init__(
        self,
        chain: Sequence[Filter],
        book: PolicyBook,
        ports: Ports,
        budget: float,
        av_policies: AvPolicyLoader | None = None,
    ) -> None:
        names = [f.name for f in chain]
        if len(set(names)) != len(names):
            raise ValueError(f"filter names must be unique: {names}")
        self.chain = tuple(chain)
        # filters whose lookup does nothing get no task (their evidence is None)
        self._io = tuple(f for f in self.chain if type(f).lookup is not NoLookup.lookup)
        # a chain of only filters that read the parts (the relay alone: the built-in
        # message checks) is not given the text and URLs (a tenth of the relay's CPU)
        self._reads_all = not all(getattr(f, "reads_parts_only", False) for f in self.chain)
        self.book = book
        self.ports = ports
        self.budget = budget
        self.av_policies = av_policies

    async def run(self, ctx: MessageContext) -> Verdict:
        started = time.perf_counter()
        timings: dict[str, float] = {}
        await self._read_ahead(ctx, timings)
        # the lookups run as tasks while the policies are read (in memory: at once)
        begun = time.perf_counter()
        tasks = self._start_lookups(ctx, timings)
        try:
            policies = await self._load_av_policies(ctx.envelope.rcpt_tos)
        except BaseException:
            for task in tasks.values():
                task.cancel()
            raise
        evidence = await self._lookups(ctx, tasks, timings, begun)
        mark = time.perf_counter()
        results: dict[str, dict[str, FilterResult]] = {}
        for domain in dict.fromkeys(domain_of(r) for r in ctx.envelope.rcpt_tos):
            results[domain] = self._evaluate(ctx, evidence, domain)
        decisions = tuple(
            decide(
                rcpt,
                self.book.for_domain(domain_of(rcpt)),
                results[domain_of(rcpt)],
                policies.get(rcpt, AvPolicy()),
                outbound=ctx.envelope.outbound,
            )
            for rcpt in ctx.envelope.rcpt_tos
        )
        timings["evaluate"] = (time.perf_counter() - mark) * 1000
        timings["total"] = (time.perf_counter() - started) * 1000
        return Verdict(ctx, results, decisions, {k: round(v, 3) for k, v in timings.items()})

    async def _read_ahead(self, ctx: MessageContext, timings: dict[str, float]) -> None:
        """Parse the message before the lookups start, so that they share one reading
        instead of racing for it (the classifier's thread and the loop's blocklist
        lookup would each parse the parts); only the parts when no filter of the chain
        reads more. A big message is parsed in a worker thread, a small one here, where
        the hop would cost more than the parse. A failure is left for the lookups to
        meet again, each under its error policy."""
        mark = time.perf_counter()
        big = len(ctx.raw) > READ_AHEAD_BYTES
        read = ctx.read_all if self._reads_all else ctx.read_parts
        try:
            if big:
                await asyncio.to_thread(read)
            else:
                read()
        except Exception as exc:  # noqa: BLE001 - the lookups meet it again, under their policies
            log.warning("%s: reading the message ahead failed: %r", ctx.queue_id, exc)
        if big:  # timed apart only when it is a hop of its own
            timings["read_ahead"] = (time.perf_counter() - mark) * 1000

    async def _load_av_policies(self, rcpts: Sequence[str]) -> Mapping[str, AvPolicy]:
        if self.av_policies is None:
            return {}
        return await self.av_policies(rcpts)

    def _start_lookups(
        self, ctx: MessageContext, timings: dict[str, float]
    ) -> dict[str, asyncio.Task]:
        async def timed(filt: Filter) -> Any:
            start = time.perf_counter()
            try:
                return await filt.lookup(ctx, self.ports)
            finally:
                timings[filt.name] = (time.perf_counter() - start) * 1000

        return {f.name: asyncio.create_task(timed(f), name=f"lookup:{f.name}") for f in self._io}

    async def _lookups(
        self,
        ctx: MessageContext,
        tasks: dict[str, asyncio.Task],
        timings: dict[str, float],
        started: float,
    ) -> dict[str, Any]:
        """Every filter's evidence (in chain order), or its LookupFailure; the lookups
        still running `budget` seconds after `started` are cancelled."""
        pending: set[asyncio.Task] = set()
        if tasks:
            left = max(0.0, self.budget - (time.perf_counter() - started))
            _, pending = await asyncio.wait(tasks.values(), timeout=left)
        for late in pending:
            late.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        evidence: dict[str, Any] = {}
        for filt in self.chain:
            name = filt.name
            task = tasks.get(name)
            if task is None:  # NoLookup
                evidence[name] = None
                timings[name] = 0.0
            elif task in pending:
                evidence[name] = LookupFailure(f"timeout after {self.budget:g}s")
                timings[name] = self.budget * 1000
            elif task.exception() is not None:
                exc = task.exception()
                log.warning("%s: lookup failed for %s: %r", ctx.queue_id, name, exc)
                evidence[name] = LookupFailure(f"{exc.__class__.__name__}: {exc}")
            else:
                evidence[name] = task.result()
        return evidence

    def _evaluate(
        self, ctx: MessageContext, evidence: Mapping[str, Any], domain: str
    ) -> dict[str, FilterResult]:
        policy = self.book.for_domain(domain)
        results: dict[str, FilterResult] = {}
        for filt in self.chain:
            found = evidence[filt.name]
            if isinstance(found, LookupFailure):
                results[filt.name] = failure_result(filt, found.reason)
                continue
            try:
                results[filt.name] = filt.evaluate(ctx, found, Scope(domain, policy, dict(results)))
            except Exception as exc:
                log.exception("%s: %s.evaluate failed", ctx.queue_id, filt.name)
                results[filt.name] = failure_result(filt, f"{exc.__class__.__name__}: {exc}")
        return results
