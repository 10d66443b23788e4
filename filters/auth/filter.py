"""The sender authentication filter: SPF, DKIM, ARC and DMARC for one message.

`lookup` asks the first DNS questions of every check together on the event loop
(SPF of MAIL FROM and HELO, the DKIM keys, DMARC discovery), then runs the
blocking libraries (pyspf, dkimpy) in one worker hop, where they find those
answers in the resolver's cache; all under one DNS budget per message, so a
slow or hostile sender's DNS costs at most [dns] budget seconds: whatever is
not answered by then becomes a temperror outcome. `evaluate` is pure: symbols,
the DMARC-forced action for the recipient domain's `dmarc` mode, and our
Authentication-Results header.
"""

from __future__ import annotations

import asyncio
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from typing import Any

from filters.auth.dkimcheck import ArcOutcome, DkimOutcome, verify_arc, verify_dkim
from filters.auth.dmarc import DmarcLookup, DmarcVerdict, FromDomain, discover, from_domain, verdict
from filters.auth.domains import ascii_domain, org_domain
from filters.auth.results import authentication_results
from filters.auth.spfcheck import SpfOutcome, check_helo, check_mailfrom
from filters.base import Scope
from gateway.adapters import Ports
from gateway.adapters.dns import Budget
from gateway.address import domain_of
from gateway.model import FilterResult, Force, ForceKind, MessageContext, OnError, Symbol

GRACE = 0.5  # seconds past the DNS budget before an unfinished check is given up
WORKERS = 32  # the checks mostly wait on DNS: threads, not cores
DMARC_MODES = ("honour", "quarantine", "score")
_ARC_HEADER = re.compile(rb"(?im)^arc-seal\s*:")
_DKIM_HEADER = re.compile(rb"(?im)^dkim-signature\s*:")
_DKIM_TAGS = re.compile(rb"(?im)^dkim-signature\s*:(.*)$")
_TAG = re.compile(rb"(?:^|;)\s*([a-z]+)\s*=\s*([^;]*?)\s*(?=;|$)")


@cache
def _executor() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="auth")


@dataclass(frozen=True)
class AuthEvidence:
    """Everything the checks found; evaluate turns it into symbols per domain."""

    spf: SpfOutcome  # MAIL FROM identity (the HELO identity for the null sender)
    helo: SpfOutcome | None  # HELO identity, checked separately when MAIL FROM is not null
    dkim: tuple[DkimOutcome, ...]
    arc: ArcOutcome
    sender: FromDomain
    dmarc: DmarcLookup
    seconds: float = 0.0
    budget_exhausted: bool = False


def _raw_from(ctx: MessageContext) -> list[str]:
    try:
        return [str(v) for k, v in ctx.message.raw_items() if k.lower() == "from"]
    except Exception:  # noqa: BLE001 - unparsable header block: no From to trust
        return []


class AuthFilter:
    """SPF, DKIM, ARC and DMARC; `authserv_id` names us in Authentication-Results."""

    name = "auth"
    on_error = OnError.CONTINUE  # authentication is evidence, not a reason to hold mail

    def __init__(self, authserv_id: str, max_seconds: float | None = None) -> None:
        """`max_seconds`: the pipeline's budget, so ours ends first and we still answer."""
        self.authserv_id = authserv_id
        self.max_seconds = max_seconds
        org_domain("example.com")  # read the public suffix list now, not on the first message

    async def lookup(self, ctx: MessageContext, ports: Ports) -> AuthEvidence:
        started = time.monotonic()
        env = ctx.envelope
        sender = from_domain(_raw_from(ctx))
        resolver = ports.dns
        if resolver is None:
            return _unanswered(env.mail_from, env.helo, sender, "no DNS resolver configured")
        seconds = resolver.settings.budget
        if self.max_seconds is not None:
            seconds = max(0.1, min(seconds, self.max_seconds - 2 * GRACE))
        budget: Budget = resolver.budget(seconds)
        blocking = resolver.blocking(budget)
        loop = asyncio.get_running_loop()
        pool = _executor()
        receiver = self.authserv_id

        head = _header_block(ctx.raw)
        signed = bool(_DKIM_HEADER.search(head))  # unsigned mail: dkimpy need not parse it
        sealed = bool(_ARC_HEADER.search(head))
        dmarc = None
        if sender.status == "ok":
            dmarc = asyncio.ensure_future(discover(resolver, budget, sender.domain))
        # the first queries of every check together, on the event loop; then the
        # checks in one worker hop, finding their answers in the cache
        await resolver.prefetch(blocking, _first_questions(env.mail_from, env.helo, head))

        def checks() -> dict[str, Any]:
            out: dict[str, Any] = {}
            if signed:
                out["dkim"] = verify_dkim(ctx.raw, blocking)
            if sealed:
                out["arc"] = verify_arc(ctx.raw, blocking)
            out["spf"] = check_mailfrom(blocking, env.client_ip, env.mail_from, env.helo, receiver)
            if env.mail_from:
                out["helo"] = check_helo(blocking, env.client_ip, env.helo, receiver)
            return out

        worker = asyncio.ensure_future(loop.run_in_executor(pool, checks))
        waiting = [worker] if dmarc is None else [worker, dmarc]
        _done, pending = await asyncio.wait(waiting, timeout=max(0.0, budget.remaining()) + GRACE)
        for future in pending:
            future.cancel()  # a worker thread finishes on its own: its queries fail fast now
        found: dict[str, Any] = {}
        if worker not in pending:
            found = worker.result()  # an exception here is a bug: the pipeline handles it
        if dmarc is not None and dmarc not in pending:
            found["dmarc"] = dmarc.result()
        expected = {"spf", "dkim" if signed else "", "helo" if env.mail_from else ""}
        expected |= {"arc" if sealed else "", "dmarc" if dmarc is not None else ""}
        expected.discard("")

        def result(name: str, default: Any) -> Any:
            return found.get(name, default)

        timeout = "DNS budget for this message exhausted"
        fallback = _unanswered(env.mail_from, env.helo, sender, timeout)
        return AuthEvidence(
            spf=result("spf", fallback.spf),
            helo=result("helo", fallback.helo),
            dkim=result("dkim", fallback.dkim if signed else ()),
            arc=result("arc", fallback.arc if sealed else ArcOutcome("none")),
            sender=sender,
            dmarc=result("dmarc", fallback.dmarc if sender.status == "ok" else _skipped(sender)),
            seconds=time.monotonic() - started,
            budget_exhausted=not expected <= found.keys(),
        )

    def evaluate(self, ctx: MessageContext, evidence: Any, scope: Scope) -> FilterResult:
        ev: AuthEvidence = evidence
        v = verdict(ev.sender, ev.dmarc, ev.spf, ev.dkim, sample_key=_sample_key(ctx))
        mode = scope.policy.dmarc if scope.policy.dmarc in DMARC_MODES else "honour"
        force, disposition = _force(v, mode)
        header = authentication_results(self.authserv_id, ev.spf, ev.dkim, v, disposition, ev.arc)
        return FilterResult(
            symbols=tuple(_symbols(ev, v)),
            force=force,
            headers=(("Authentication-Results", header),),
            facts=_facts(ev, v, disposition),
        )


def _first_questions(mail_from: str, helo: str, head: bytes) -> list[tuple[str, str]]:
    """The TXT records the checks will ask for first: SPF of the MAIL FROM and HELO
    domains, the key of each DKIM signature (parsed loosely: dkimpy decides)."""
    names = []
    for identity in (domain_of(mail_from) if mail_from else "", helo):
        domain = ascii_domain(identity) if identity and not identity.startswith("[") else None
        if domain:
            names.append(domain)
    for signature in _DKIM_TAGS.finditer(_unfold(head)):
        tags = dict(_TAG.findall(signature.group(1)))
        domain = ascii_domain(tags.get(b"d", b"").decode("ascii", "replace"))
        selector = tags.get(b"s", b"").decode("ascii", "replace")
        if domain and re.fullmatch(r"[A-Za-z0-9_.-]{1,253}", selector):
            names.append(f"{selector}._domainkey.{domain}")
    return [(name, "TXT") for name in names[:8]]


def _unfold(head: bytes) -> bytes:
    return re.sub(rb"\r?\n[ \t]+", b" ", head)


def _header_block(raw: bytes) -> bytes:
    end = raw.find(b"\r\n\r\n")
    if end < 0:
        end = raw.find(b"\n\n")
    return raw if end < 0 else raw[:end]


def _skipped(sender: FromDomain) -> DmarcLookup:
    return DmarcLookup("skipped", detail=sender.detail)


def _unanswered(mail_from: str, helo: str, sender: FromDomain, why: str) -> AuthEvidence:
    """Every check as temperror: used when DNS is unavailable or the budget ran out."""
    domain = domain_of(mail_from)
    spf = (
        SpfOutcome("temperror", "mailfrom", domain, mail_from, why)
        if mail_from
        else SpfOutcome("temperror", "helo", helo.lower(), helo, why)
    )
    return AuthEvidence(
        spf=spf,
        helo=SpfOutcome("temperror", "helo", helo.lower(), helo, why) if mail_from else None,
        dkim=(DkimOutcome("temperror", "", reason=why),),
        arc=ArcOutcome("temperror", why),
        sender=sender,
        dmarc=DmarcLookup("temperror", detail=why) if sender.status == "ok" else _skipped(sender),
        budget_exhausted=True,
    )


def _sample_key(ctx: MessageContext) -> str:
    """pct= sampling by our queue id: every recipient domain of a message agrees, and
    the sender cannot pick a Message-ID that always lands outside the sample."""
    return ctx.queue_id


def _force(v: DmarcVerdict, mode: str) -> tuple[Force | None, str]:
    """The action a DMARC failure demands, per the recipient domain's `dmarc` mode."""
    if v.result != "fail" or v.policy == "none" or mode == "score":
        return None, "none"
    if v.policy == "reject" and mode == "honour":
        kind, disposition = ForceKind.REJECT, "reject"
    else:
        kind, disposition = ForceKind.QUARANTINE, "quarantine"
    reason = f"DMARC policy of {v.domain} is p={v.policy} and the message fails it"
    reply = None
    if kind is ForceKind.REJECT:
        reply = f"Message rejected: it fails the DMARC policy of {v.domain}"
    return Force(kind=kind, reason=reason, source="auth", reply_text=reply), disposition


def _symbols(ev: AuthEvidence, v: DmarcVerdict) -> list[Symbol]:
    out = [Symbol(f"SPF_{ev.spf.result.upper()}", _opt(ev.spf.domain))]
    if ev.helo is not None:
        out.append(Symbol(f"SPF_HELO_{ev.helo.result.upper()}", _opt(ev.helo.domain)))
    if not ev.dkim:
        out.append(Symbol("DKIM_NONE"))
    by_result: dict[str, list[str]] = {}
    for d in ev.dkim:
        domains = by_result.setdefault(d.result, [])
        if d.domain and d.domain not in domains:
            domains.append(d.domain)
    for result, domains in by_result.items():
        out.append(Symbol(f"DKIM_{result.upper()}", tuple(domains)))
    out.append(_dmarc_symbol(v))
    if ev.sender.status == "multiple":
        # no single domain's policy applies: a forger could add a second address to
        # escape a p=reject, so this weighs as much as a failed DMARC on its own
        out.append(Symbol("FROM_MULTIPLE_DOMAINS", _opt(ev.sender.detail)))
    if ev.arc.result != "none":
        out.append(Symbol(f"ARC_{ev.arc.result.upper()}"))
    return out


def _opt(value: str) -> tuple[str, ...]:
    return (value,) if value else ()


def _dmarc_symbol(v: DmarcVerdict) -> Symbol:
    if v.result == "fail":
        name = {"reject": "DMARC_REJECT", "quarantine": "DMARC_QUARANTINE"}.get(
            v.policy, "DMARC_FAIL_NONE"
        )
        options = (v.domain, f"p={v.published}") + (("pct",) if v.sampled_out else ())
        return Symbol(name, options)
    return Symbol(f"DMARC_{v.result.upper()}", _opt(v.domain))


def _facts(ev: AuthEvidence, v: DmarcVerdict, disposition: str) -> dict[str, Any]:
    return {
        "spf": ev.spf.result,
        "spf_domain": ev.spf.domain,
        "helo_spf": ev.helo.result if ev.helo else None,
        "dkim": [[d.result, d.domain] for d in ev.dkim],
        "dmarc": v.result,
        "dmarc_policy": v.policy,
        "dmarc_disposition": disposition,
        "from_domain": v.domain,
        "arc": ev.arc.result,
        "auth_seconds": round(ev.seconds, 3),
        "dns_budget_exhausted": ev.budget_exhausted,
    }
