"""A message judged as the gateway would judge it, with a draft policy in force for
one domain: what `mailwarden rules test` and the console's dry run show.

Nothing here is a second evaluator: the message goes through the configured filter
chain (gateway/pipeline/assemble.py, the server's own) and `decide`, with a
PolicyBook in which the draft replaces the domain's policy. Nothing is recorded,
delivered or held.
"""

from __future__ import annotations

import asyncio
import email.utils
from typing import Any

from filters.rules.lang import PolicyFile
from gateway.address import domain_of
from gateway.config import Settings
from gateway.domain_policy import PolicyBook
from gateway.mail.received import received_context
from gateway.model import Envelope
from gateway.pipeline.assemble import build_pipeline, build_ports
from gateway.pipeline.chain import build_chain
from gateway.pipeline.policy_files import apply_policy_file
from gateway.store.spool import new_queue_id

MAX_MESSAGE_BYTES = 2 * 1024 * 1024  # a pasted or uploaded message in the console


def envelope_for(
    domain: str,
    raw: bytes,
    mail_from: str | None = None,
    rcpts: list[str] | None = None,
    ip: str = "127.0.0.1",
    helo: str = "localhost",
) -> Envelope:
    """The envelope of a trial: the given sender and recipients, else the From address
    and the To/Cc addresses of `domain` (else user@domain)."""
    probe = received_context("probe", Envelope("", (), ip), raw).message
    if mail_from is None:
        pairs = email.utils.getaddresses([str(v) for v in probe.get_all("from", [])])
        mail_from = pairs[0][1] if pairs else ""
    if not rcpts:
        found = []
        for header in ("to", "cc"):
            for _, addr in email.utils.getaddresses([str(v) for v in probe.get_all(header, [])]):
                if domain_of(addr) == domain:
                    found.append(addr)
        rcpts = list(dict.fromkeys(found)) or [f"user@{domain}"]
    return Envelope(
        mail_from=mail_from.strip().strip("<>"),
        rcpt_tos=tuple(r.strip().strip("<>") for r in rcpts),
        client_ip=ip,
        helo=helo,
    )


def book_with(settings: Settings, policy: PolicyFile) -> PolicyBook:
    """The operator's defaults, and the draft as its domain's policy."""
    base = PolicyBook.from_settings(settings)
    return PolicyBook(base.default, {policy.domain: apply_policy_file(base.default, policy)})


async def judge(
    settings: Settings, ports: Any, policy: PolicyFile, envelope: Envelope, raw: bytes, chain=None
) -> dict[str, Any]:
    """Run the message through the pipeline with `policy` in force; the verdict as JSON."""
    book = book_with(settings, policy)
    ctx = received_context(new_queue_id(), envelope, raw)
    verdict = await build_pipeline(settings, ports, book, chain).run(ctx)
    rules_result = verdict.results.get(policy.domain, {}).get("rules")
    fired = list(rules_result.facts.get("fired", [])) if rules_result else []
    thresholds = book.for_domain(policy.domain).thresholds
    first = verdict.decisions[0]
    return {
        "domain": policy.domain,
        "mail_from": envelope.mail_from,
        "rcpts": list(envelope.rcpt_tos),
        "client_ip": envelope.client_ip,
        "fired": fired,
        "action": str(first.action),
        "score": round(first.score, 3),
        "reply": str(first.reply) if first.reply else None,
        "thresholds": {
            "tag": thresholds.tag,
            "quarantine": thresholds.quarantine,
            "reject": thresholds.reject,
        },
        "decisions": [d.as_json() for d in verdict.decisions],
    }


class _Reads:
    """An engine behind the one method the pipeline's readers call (`db.run`)."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine

    async def run(self, fn, *args):
        return await asyncio.to_thread(fn, self.engine, *args)


class Bench:
    """The pipeline's parts kept by a long-lived process (the console) for its dry runs:
    the chain (the classifier model loads once) and the ports, made on first use in the
    running event loop; the local lists reloaded when they changed."""

    def __init__(self, settings: Settings, engine: Any, chain: Any = None) -> None:
        self.settings = settings
        self.engine = engine
        self._ports: Any = None
        self._chain: Any = chain  # the gateway's own, when the console runs beside it
        self._lock = asyncio.Lock()

    async def judge(self, policy: PolicyFile, envelope: Envelope, raw: bytes) -> dict[str, Any]:
        async with self._lock:
            if self._chain is None:
                self._chain = await asyncio.to_thread(build_chain, self.settings)
            if self._ports is None:
                self._ports = build_ports(self.settings, _Reads(self.engine))
            if self._ports.lists is not None:
                await self._ports.lists.reload()
        return await judge(self.settings, self._ports, policy, envelope, raw, self._chain)
