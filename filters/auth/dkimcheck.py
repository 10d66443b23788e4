"""DKIM (RFC 6376, RFC 8463) and ARC (RFC 8617) verification with dkimpy.

dkimpy turns a DNS failure into a plain "signature invalid", which would make
a timeout look like forgery. So we fetch each key ourselves through the
message's budgeted lookups, tell temperror (no answer) and permerror (no key,
bad key) apart, and only then let dkimpy check the signature against that key.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import dkim

from filters.auth.domains import ascii_domain
from gateway.adapters.dns import BlockingLookups, DnsError, NoRecord

log = logging.getLogger(__name__)
# dkimpy logs every malformed signature at ERROR; that is the sender's problem, not ours
_dkimpy_log = logging.getLogger(__name__ + ".dkimpy")
_dkimpy_log.setLevel(logging.CRITICAL)

MAX_SIGNATURES = 10  # more are reported, not checked: each costs a DNS query and a hash
_TAG = re.compile(rb"(?:^|;)\s*([a-z]+)\s*=\s*([^;]*)", re.IGNORECASE)


@dataclass(frozen=True)
class DkimOutcome:
    """The result of one DKIM-Signature header."""

    result: str  # pass | fail | temperror | permerror
    domain: str  # d= (A-label, lower case); "" when unreadable
    selector: str = ""
    algorithm: str = ""
    reason: str = ""
    b: str = ""  # the first 8 characters of b=, to tell signatures apart (RFC 6008)


@dataclass(frozen=True)
class ArcOutcome:
    result: str  # pass | fail | none | temperror
    reason: str = ""
    instances: int = 0


def _text(value: bytes) -> str:
    return value.decode("ascii", "replace")


def _loose_tags(header_value: bytes) -> dict[bytes, bytes]:
    """d=, s=, a= read leniently, to name the signer even when the header is broken."""
    return {m.group(1).lower(): m.group(2).strip() for m in _TAG.finditer(header_value)}


def _outcome(result: str, tags: dict[bytes, bytes], reason: str) -> DkimOutcome:
    domain = ascii_domain(_text(tags.get(b"d", b""))) or ""
    b = re.sub(rb"\s+", b"", tags.get(b"b", b""))[:8]
    return DkimOutcome(
        result=result,
        domain=domain,
        selector=_text(tags.get(b"s", b""))[:63],
        algorithm=_text(tags.get(b"a", b""))[:32],
        reason=reason,
        b=_text(b) if re.fullmatch(rb"[A-Za-z0-9+/=]*", b) else "",
    )


def verify_dkim(raw: bytes, lookups: BlockingLookups) -> tuple[DkimOutcome, ...]:
    """Every DKIM-Signature of the message, in header order (top first)."""
    try:
        signer = dkim.DKIM(raw, logger=_dkimpy_log, minkey=1024)
    except Exception as exc:  # noqa: BLE001 - dkimpy's parser meets any garbage
        count = len(re.findall(rb"(?im)^dkim-signature\s*:", raw.split(b"\r\n\r\n", 1)[0]))
        reason = f"message cannot be parsed for DKIM: {exc}"
        return tuple(_outcome("permerror", {}, reason) for _ in range(count))
    headers = [v for k, v in signer.headers if k.lower() == b"dkim-signature"]
    outcomes = []
    for idx, value in enumerate(headers):
        tags = _loose_tags(value)
        if idx >= MAX_SIGNATURES:
            reason = f"not checked: more than {MAX_SIGNATURES} signatures"
            outcomes.append(_outcome("permerror", tags, reason))
            continue
        outcomes.append(_verify_one(signer, idx, tags, lookups))
    return tuple(outcomes)


def _verify_one(
    signer: dkim.DKIM, idx: int, tags: dict[bytes, bytes], lookups: BlockingLookups
) -> DkimOutcome:
    try:
        prep = signer.verify_headerprep(idx)
    except Exception as exc:  # noqa: BLE001 - DKIMException and parse slips alike
        return _outcome("permerror", tags, f"bad signature header: {exc}")
    if not prep:
        return _outcome("permerror", tags, "bad signature header")
    sig, include_headers, sig_headers = prep
    tags = {**tags, **{k: v for k, v in sig.items() if k in (b"d", b"s", b"a", b"b")}}
    if sig[b"a"] == b"rsa-sha1":
        return _outcome("permerror", tags, "rsa-sha1 is not accepted (RFC 8301)")
    if b"from" not in include_headers:
        return _outcome("permerror", tags, "From is not signed (RFC 6376 5.4)")
    domain = ascii_domain(_text(sig[b"d"]))
    selector = _text(sig[b"s"])
    if domain is None or not re.fullmatch(r"[A-Za-z0-9_.-]{1,253}", selector):
        return _outcome("permerror", tags, "invalid d= or s=")
    name = f"{selector}._domainkey.{domain}"
    try:
        records = lookups.txt(name)
    except NoRecord:
        return _outcome("permerror", tags, f"no key at {name}")
    except DnsError as exc:
        return _outcome("temperror", tags, f"key lookup failed: {exc}")
    key = records[0] if records else b""
    try:
        dkim.evaluate_pk(name.encode(), key)
    except Exception as exc:  # noqa: BLE001 - KeyFormatError, base64 and ASN.1 errors
        return _outcome("permerror", tags, f"unusable key: {exc}")
    try:
        valid = signer.verify_sig(sig, include_headers, sig_headers[idx], lambda *a, **k: key)
    except dkim.ValidationError as exc:
        return _outcome("fail", tags, str(exc))
    except Exception as exc:  # noqa: BLE001 - key too small, bad c=, bad base64
        return _outcome("permerror", tags, str(exc))
    if valid:
        return _outcome("pass", tags, "")
    return _outcome("fail", tags, "signature did not verify")


def verify_arc(raw: bytes, lookups: BlockingLookups) -> ArcOutcome:
    """The ARC chain's validation status (cv), for symbols only: we trust no sealer."""
    dns_errors: list[str] = []

    def dnsfunc(name, timeout=5):
        try:
            return lookups.dkim_txt(name)
        except dkim.DnsTimeoutError as exc:
            dns_errors.append(str(exc))
            raise

    try:
        cv, results, reason = dkim.arc_verify(raw, logger=_dkimpy_log, dnsfunc=dnsfunc)
    except Exception as exc:  # noqa: BLE001 - malformed ARC sets
        return ArcOutcome("fail", f"ARC headers cannot be verified: {exc}")
    instances = len(results)
    if cv == dkim.CV_None:
        return ArcOutcome("none", str(reason), 0)
    if cv == dkim.CV_Pass:
        return ArcOutcome("pass", "", instances)
    if dns_errors:
        return ArcOutcome("temperror", dns_errors[0], instances)
    return ArcOutcome("fail", str(reason), instances)
