"""DMARC (RFC 7489): the From domain, policy discovery, alignment and the verdict.

Discovery is the only I/O (`discover`, two TXT queries at most); everything
else is pure, so the verdict for a message is a function of the SPF and DKIM
outcomes, the From header and the record found.
"""

from __future__ import annotations

import contextlib
import email.utils
import hashlib
import re
from dataclasses import dataclass, field

from filters.auth.dkimcheck import DkimOutcome
from filters.auth.domains import aligned, ascii_domain, org_domain
from filters.auth.spfcheck import SpfOutcome
from gateway.adapters.dns import Budget, DnsError, NoRecord, Resolver

POLICIES = ("none", "quarantine", "reject")


@dataclass(frozen=True)
class FromDomain:
    """The RFC5322.From domain, or why there is none to check."""

    status: str  # ok | missing (no From or no address) | multiple | invalid
    domain: str = ""  # A-label, lower case, when status is ok
    detail: str = ""


def _header_text(value: str) -> str:
    """A raw header value as text: unfolded, raw UTF-8 bytes restored."""
    with contextlib.suppress(UnicodeError):  # real non-ASCII text is kept as it is
        value = value.encode("ascii", "surrogateescape").decode("utf-8", "replace")
    return re.sub(r"\r?\n[ \t]", " ", value)


def from_domain(raw_values: list[str]) -> FromDomain:
    """RFC 7489 6.6.1: exactly one From header; several addresses only if one domain.

    `raw_values` are the From header values as received (encoded words intact,
    so a display name can never inject an address).
    """
    if not raw_values:
        return FromDomain("missing", detail="no From header")
    if len(raw_values) > 1:
        return FromDomain("multiple", detail=f"{len(raw_values)} From headers")
    pairs = email.utils.getaddresses([_header_text(raw_values[0])])
    addresses = [addr for _name, addr in pairs if "@" in addr]
    if not addresses:
        return FromDomain("missing", detail="no address in From")
    domains = set()
    for addr in addresses:
        domain = ascii_domain(addr.rpartition("@")[2])
        if domain is None:
            return FromDomain("invalid", detail=f"not a valid domain: {addr[-80:]!r}")
        domains.add(domain)
    if len(domains) > 1:
        return FromDomain("multiple", detail="From addresses in several domains")
    return FromDomain("ok", domain=domains.pop())


@dataclass(frozen=True)
class DmarcRecord:
    """A parsed policy record, or why it is unusable (`error`)."""

    p: str = "none"
    sp: str | None = None
    adkim: str = "r"
    aspf: str = "r"
    pct: int = 100
    error: str = ""
    tags: dict[str, str] = field(default_factory=dict)


def parse_record(text: str) -> DmarcRecord:
    """Tag-value list of RFC 7489 6.3; unknown tags are ignored as the RFC says."""
    tags: dict[str, str] = {}
    for part in text.split(";"):
        name, sep, value = part.partition("=")
        if sep:
            tags.setdefault(name.strip().lower(), value.strip())
    if tags.get("v") != "DMARC1":
        return DmarcRecord(error="not a DMARC1 record", tags=tags)
    p = tags.get("p", "").lower()
    if p not in POLICIES:
        # 6.6.3: an invalid or missing p= with a valid rua= means p=none
        if tags.get("rua", "").lower().startswith("mailto:"):
            p = "none"
        else:
            return DmarcRecord(error=f"invalid p={tags.get('p', '')!r}", tags=tags)
    sp = tags.get("sp", "").lower() or None
    if sp is not None and sp not in POLICIES:
        sp = None  # invalid sp: fall back to p
    adkim = "s" if tags.get("adkim", "r").lower() == "s" else "r"
    aspf = "s" if tags.get("aspf", "r").lower() == "s" else "r"
    try:
        pct = min(100, max(0, int(tags.get("pct", "100"))))
    except ValueError:
        pct = 100
    return DmarcRecord(p=p, sp=sp, adkim=adkim, aspf=aspf, pct=pct, tags=tags)


@dataclass(frozen=True)
class DmarcLookup:
    """What policy discovery found."""

    status: str  # found | none | temperror | skipped (no usable From domain)
    record: DmarcRecord | None = None
    record_domain: str = ""  # where the record was found (From or org domain)
    detail: str = ""


def _dmarc_records(texts: list[bytes]) -> list[str]:
    out = []
    for raw in texts:
        text = raw.decode("utf-8", "replace")
        if re.match(r"v\s*=\s*DMARC1\s*(;|$)", text.strip()):
            out.append(text)
    return out


async def discover(resolver: Resolver, budget: Budget, domain: str) -> DmarcLookup:
    """RFC 7489 6.6.3: _dmarc.<From domain>, else _dmarc.<organizational domain>."""
    candidates = [domain]
    org = org_domain(domain)
    if org != domain:
        candidates.append(org)
    for name in candidates:
        try:
            texts = await resolver.txt(f"_dmarc.{name}", timeout=budget.timeout(name))
        except NoRecord:
            continue
        except DnsError as exc:
            return DmarcLookup("temperror", detail=str(exc))
        records = _dmarc_records(texts)
        if len(records) > 1:
            return DmarcLookup("none", detail=f"several DMARC records at _dmarc.{name}")
        if records:
            return DmarcLookup("found", parse_record(records[0]), name)
    return DmarcLookup("none", detail="no DMARC record")


@dataclass(frozen=True)
class DmarcVerdict:
    """The DMARC result for the message and the policy its owner asks for."""

    result: str  # pass | fail | none | temperror | permerror
    domain: str = ""  # the From domain
    policy: str = "none"  # the requested policy after sp= and pct= (none/quarantine/reject)
    published: str = ""  # the p= (or sp=) as published, for the A-R comment
    spf_aligned: bool = False
    dkim_aligned: bool = False
    sampled_out: bool = False  # pct= excluded this message: policy stepped down one level
    reason: str = ""


def sampled(pct: int, key: str) -> bool:
    """pct= sampling (RFC 7489 6.6.4), deterministic per key (the queue id), so every
    recipient domain of one message gets the same answer."""
    if pct >= 100:
        return True
    if pct <= 0:
        return False
    digest = hashlib.sha256(key.encode("utf-8", "replace")).digest()
    return int.from_bytes(digest[:4], "big") % 100 < pct


def _step_down(policy: str) -> str:
    return {"reject": "quarantine", "quarantine": "none"}.get(policy, "none")


def verdict(
    sender: FromDomain,
    lookup: DmarcLookup,
    spf: SpfOutcome,
    dkim: tuple[DkimOutcome, ...],
    sample_key: str,
) -> DmarcVerdict:
    """Alignment of SPF and DKIM with the From domain, and the policy that applies."""
    if sender.status == "missing":
        return DmarcVerdict("none", reason=sender.detail)
    if sender.status != "ok":
        return DmarcVerdict("permerror", reason=sender.detail)
    domain = sender.domain
    if lookup.status == "temperror":
        return DmarcVerdict("temperror", domain, reason=lookup.detail)
    if lookup.status != "found" or lookup.record is None:
        return DmarcVerdict("none", domain, reason=lookup.detail)
    record = lookup.record
    if record.error:
        return DmarcVerdict("permerror", domain, reason=record.error)
    spf_ok = spf.result == "pass" and aligned(spf.domain, domain, record.aspf)
    dkim_ok = any(d.result == "pass" and aligned(d.domain, domain, record.adkim) for d in dkim)
    published = record.p
    if lookup.record_domain != domain and record.sp:
        published = record.sp  # the record of the organizational domain, for a subdomain
    if spf_ok or dkim_ok:
        return DmarcVerdict(
            "pass", domain, "none", published, spf_aligned=spf_ok, dkim_aligned=dkim_ok
        )
    # a temporary failure of an identifier that could have aligned is not a forgery
    pending = [f"SPF {spf.domain}"] if spf.result == "temperror" else []
    pending = [p for p in pending if aligned(spf.domain, domain, record.aspf)]
    pending += [
        f"DKIM {d.domain}"
        for d in dkim
        if d.result == "temperror" and aligned(d.domain, domain, record.adkim)
    ]
    if pending:
        return DmarcVerdict(
            "temperror", domain, "none", published, reason="temporary error: " + ", ".join(pending)
        )
    policy, out = published, False
    if policy != "none" and not sampled(record.pct, sample_key):
        policy, out = _step_down(policy), True
    return DmarcVerdict(
        "fail", domain, policy, published, sampled_out=out, reason="no aligned SPF or DKIM pass"
    )
