"""Antivirus: every leaf MIME part and the whole message, scanned by clamd.

Scanning each leaf after transfer decoding (and each uuencoded block inside a
text part) tells us WHICH parts are infected, so "clean" mode can replace just
those (gateway.mail.edit). The whole message is scanned as well: clamd's own
MIME parser is a second opinion, and a virus it finds that no part explains is
reported with part_id "" (not separable: policy quarantines the message).
Archives are left to clamd, which unpacks them itself.

Nothing is ever passed unscanned in silence: a part larger than clamd's
StreamMaxLength, or over clamd's archive limits (zip bombs, nesting), is
"unscannable" and gets a symbol and, per [clamav] on_unscannable, a forced
quarantine or reject that policy applies to recipients in "clean" mode.
Scanner down or slow: the result carries the error and, with on_error =
"tempfail", a TEMPFAIL force (451, the client retries).

Weights of the symbols are in rules/symbols/antivirus.toml.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from filters.base import Scope
from gateway.adapters import Ports
from gateway.adapters.clamd import ClamdVersion, ScanResult
from gateway.config import ClamavSettings
from gateway.mail.archives import GZIP_MAGIC, ZIP_MAGIC, archive_bomb
from gateway.mail.edit import MimeEditError, leaf_spans, replace_parts
from gateway.mail.mime import uuencoded_blocks
from gateway.model import (
    FilterResult,
    Force,
    ForceKind,
    Infection,
    MessageContext,
    OnError,
    PartNotice,
    Symbol,
)

NAME = "antivirus"
MESSAGE = ""  # the part id of the whole message
_RAW_FLAGS = frozenset({"too_deep", "not_leaf"})  # payload not decoded: scan the raw bytes
_BAD_ENCODING = frozenset({"bad_base64", "bad_uuencode"})  # scan decoded and raw
_UU_BEGIN = re.compile(rb"(?m)^begin [0-7]{3,4} ")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_MAIL_PREFIX = b"MIME-Version: 1.0\r\n"


@dataclass(frozen=True)
class Target:
    """One thing sent to clamd: a decoded part, a uuencoded block, raw bytes, the message."""

    part_id: str
    kind: str  # part | uuencoded | raw (undecodable body) | deep (subtree) | message
    filename: str | None = None


@dataclass(frozen=True)
class Scan:
    target: Target
    status: str  # clean | infected | too_large | empty
    virus: str | None = None
    size: int = 0


@dataclass(frozen=True)
class AvEvidence:
    scans: tuple[Scan, ...] = ()
    version: ClamdVersion | None = None
    error: str | None = None
    separable: bool = True  # the infected parts can be replaced in the raw bytes
    elapsed_ms: float = 0.0
    bombs: tuple[str, ...] = ()  # "part: why", from our own archive check


def archive_bombs(ctx: MessageContext) -> tuple[str, ...]:
    """Parts that are archive bombs by what they declare (gateway.mail.archives)."""
    found = []
    for part in ctx.parts:
        if part.payload[:4] in ZIP_MAGIC or part.payload[:2] == GZIP_MAGIC:
            why = archive_bomb(part.payload)
            if why:
                found.append(f"{part.part_id}: {why}")
    return tuple(found)


def _has_archive(ctx: MessageContext) -> bool:
    return any(p.payload[:4] in ZIP_MAGIC or p.payload[:2] == GZIP_MAGIC for p in ctx.parts)


async def _no_bombs() -> tuple[str, ...]:
    return ()


def safe_filename(name: str | None) -> str | None:
    """An attachment name fit for notices and headers: no control characters, short."""
    if name is None:
        return None
    cleaned = _CONTROL.sub(" ", name).strip()
    return cleaned[:200] or None


def targets(ctx: MessageContext) -> list[tuple[Target, bytes]]:
    """What to scan for one message, each with its bytes (pure)."""
    out: list[tuple[Target, bytes]] = []
    spans = None
    for part in ctx.parts:
        filename = safe_filename(part.filename)
        if part.flags & (_RAW_FLAGS | _BAD_ENCODING):
            spans = spans if spans is not None else _spans_by_id(ctx.raw)
            span = spans.get(part.part_id)
            if span is not None and part.flags & _RAW_FLAGS:
                # a subtree deeper than we follow: clamd decodes it if it sees mail headers
                data = _MAIL_PREFIX + ctx.raw[span.start : span.end]
                out.append((Target(part.part_id, "deep", filename), data))
            elif span is not None:
                out.append(
                    (Target(part.part_id, "raw", filename), ctx.raw[span.body_start : span.end])
                )
            if part.flags & _RAW_FLAGS:
                continue
        out.append((Target(part.part_id, "part", filename), part.payload))
        if (
            part.transfer_encoding not in ("x-uuencode", "uuencode", "x-uue", "uue")
            and b"begin " in part.payload  # a substring search first: 15x cheaper than the regex
            and _UU_BEGIN.search(part.payload)
        ):
            for name, data in uuencoded_blocks(part.payload):
                out.append((Target(part.part_id, "uuencoded", safe_filename(name)), data))
    out.append((Target(MESSAGE, "message"), ctx.raw))
    return out


def _spans_by_id(raw: bytes) -> dict[str, Any]:
    try:
        return {s.part_id: s for s in leaf_spans(raw)}
    except MimeEditError:
        return {}


def classify(virus: str) -> str:
    """What a clamd detection name means for us: infection or a heuristic alert."""
    if virus.startswith("Heuristics.Limits.Exceeded"):
        return "limits"  # clamd stopped unpacking (AlertExceedsMax): not fully scanned
    if virus.startswith("Heuristics.Encrypted"):
        return "encrypted"  # AlertEncrypted: password-protected archive or document
    if virus.startswith("Heuristics.Phishing"):
        return "phishing"
    return "virus"


def _separable(ctx: MessageContext, part_ids: Iterable[str]) -> bool:
    """Can these parts be replaced by notices? (a trial run of the real edit)"""
    ids = sorted(set(part_ids))
    if not ids:
        return True
    try:
        replace_parts(ctx.raw, [PartNotice(pid, "removed") for pid in ids], ctx.parts)
    except MimeEditError:
        return False
    return True


class Antivirus:
    """The antivirus filter (see the module docstring)."""

    name = NAME

    def __init__(self, settings: ClamavSettings) -> None:
        self.settings = settings
        self.on_error = OnError.TEMPFAIL if settings.on_error == "tempfail" else OnError.CONTINUE

    async def lookup(self, ctx: MessageContext, ports: Ports) -> AvEvidence:
        started = time.perf_counter()
        clamd = ports.clamd
        if clamd is None:
            return AvEvidence(error="no clamd client configured")
        todo = targets(ctx)
        # the archive check reads zip directories: a worker thread, only when there is one
        bombs = asyncio.ensure_future(
            asyncio.to_thread(archive_bombs, ctx) if _has_archive(ctx) else _no_bombs()
        )
        unique: dict[bytes, list[Target]] = {}
        for target, data in todo:
            unique.setdefault(data, []).append(target)
        datas = [d for d in unique if d]
        pair: tuple[Any, Any] = await asyncio.gather(
            clamd.version(), clamd.scan_many(datas), return_exceptions=True
        )
        version, scanned = pair
        if isinstance(scanned, BaseException):
            outcomes: list[Any] = [version, scanned]
            results: dict[bytes, Any] = {}
        else:
            outcomes = [version, *scanned]
            results = dict(zip(datas, scanned, strict=True))
        errors = [r for r in outcomes if isinstance(r, BaseException)]
        bombs_found = await bombs
        if errors:
            for err in errors:
                if not isinstance(err, Exception):
                    raise err  # cancellation is not a scan result
            return AvEvidence(
                version=version if isinstance(version, ClamdVersion) else None,
                error=str(errors[0]),
                elapsed_ms=(time.perf_counter() - started) * 1000,
            )
        scans: list[Any] = []
        for data, owners in unique.items():
            found = results.get(data, ScanResult("clean", size=0))
            assert isinstance(found, ScanResult)
            status = "empty" if not data else found.status
            scans.extend(Scan(t, status, found.virus, len(data)) for t in owners)
        infected = {
            s.target.part_id
            for s in scans
            if s.status == "infected" and s.target.part_id and classify(s.virus or "") == "virus"
        }
        separable = True
        if infected:
            separable = await asyncio.to_thread(_separable, ctx, infected)
        return AvEvidence(
            scans=tuple(scans),
            version=version,
            separable=separable,
            elapsed_ms=(time.perf_counter() - started) * 1000,
            bombs=bombs_found,
        )

    def evaluate(self, ctx: MessageContext, evidence: Any, scope: Scope) -> FilterResult:
        return evaluate_scans(evidence, self.settings)

    def failure(self, reason: str) -> FilterResult:
        """A lookup that timed out or raised is a scan error like clamd's own: one symbol
        (AV_SCAN_ERROR), one policy ([clamav] on_error)."""
        return evaluate_scans(AvEvidence(error=reason), self.settings)


def _facts(evidence: AvEvidence) -> dict[str, Any]:
    version = evidence.version
    facts: dict[str, Any] = {
        "engine": " ".join(version.raw.split()) if version else "ClamAV",
        "db_version": " ".join(version.raw.split()) if version else None,
        "db_date": version.db_date.isoformat() if version and version.db_date else None,
        "scans": sum(1 for s in evidence.scans if s.status != "empty"),
        "scanned_bytes": sum(s.size for s in evidence.scans if s.status != "empty"),
        "elapsed_ms": round(evidence.elapsed_ms, 3),
    }
    return facts


def evaluate_scans(evidence: AvEvidence, settings: ClamavSettings) -> FilterResult:
    """Scan outcomes -> symbols, infections and forces (pure)."""
    facts = _facts(evidence)
    if evidence.error is not None:
        force = None
        if settings.on_error == "tempfail":
            force = Force(ForceKind.TEMPFAIL, f"virus scanner: {evidence.error}", NAME)
        return FilterResult(
            symbols=(Symbol("AV_SCAN_ERROR", (evidence.error[:200],)),),
            force=force,
            error=evidence.error,
            facts=facts,
        )
    infections: dict[tuple[str, str], Infection] = {}
    whole_message: list[str] = []
    too_large: list[str] = []
    limits: list[str] = []
    encrypted: list[str] = []
    phishing: list[str] = []
    raw_scanned: list[str] = []
    empty: list[str] = []
    message_too_large = False
    message_limits: list[str] = []
    deep = any(scan.target.kind == "deep" for scan in evidence.scans)  # parts we did not decode
    for scan in evidence.scans:
        t = scan.target
        label = t.part_id or "message"
        if t.kind in ("raw", "deep") and label not in raw_scanned:
            raw_scanned.append(label)
        if scan.status == "empty" and t.kind == "part" and t.filename:
            empty.append(f"{label}: {t.filename}")
        if scan.status == "too_large":
            if t.kind == "message":
                message_too_large = True
            else:
                too_large.append(label)
        if scan.status != "infected" or not scan.virus:
            continue
        kind = classify(scan.virus)
        if kind == "limits" and t.kind == "message" and not deep:
            # MIME wrapping adds depth: the parts themselves were scanned on their own
            message_limits.append(scan.virus.rsplit(".", 1)[-1])
        elif kind == "limits":
            limits.append(f"{label}: {scan.virus.rsplit('.', 1)[-1]}")
        elif kind == "encrypted":
            encrypted.append(f"{label}: {scan.virus}")
        elif kind == "phishing":
            phishing.append(scan.virus)
        elif t.kind == "message":
            whole_message.append(scan.virus)
        elif t.kind == "uuencoded":  # the block, not the whole text around it
            infections[(t.part_id, scan.virus)] = Infection(
                t.part_id, scan.virus, t.filename, uuencoded=True
            )
        else:
            infections.setdefault(
                (t.part_id, scan.virus), Infection(t.part_id, scan.virus, t.filename)
            )
    if not evidence.separable:
        found = {i.virus for i in infections.values()}
        infections = {(MESSAGE, v): Infection(MESSAGE, v) for v in sorted(found)}
    explained = {i.virus for i in infections.values()}
    for virus in whole_message:
        if virus not in explained:  # clamd's MIME reading found what ours did not
            infections.setdefault((MESSAGE, virus), Infection(MESSAGE, virus))
    symbols: list[Symbol] = []
    if infections:
        names = tuple(dict.fromkeys(i.virus for i in infections.values()))
        symbols.append(Symbol("VIRUS_FOUND", names))
    if too_large:
        symbols.append(Symbol("AV_PART_TOO_LARGE", tuple(_unique(too_large))))
    if limits or message_limits:
        options = _unique(limits + [f"message: {m}" for m in message_limits])
        symbols.append(Symbol("AV_LIMITS_EXCEEDED", tuple(options)))
    if encrypted:
        symbols.append(Symbol("AV_ENCRYPTED", tuple(_unique(encrypted))))
    if phishing:
        symbols.append(Symbol("AV_PHISHING", tuple(_unique(phishing))))
    if message_too_large:
        symbols.append(Symbol("AV_MESSAGE_TOO_LARGE"))
    if raw_scanned:
        symbols.append(Symbol("AV_PART_SCANNED_RAW", tuple(raw_scanned)))
    if empty:
        symbols.append(Symbol("AV_EMPTY_ATTACHMENT", tuple(_unique(empty))))
    limits.extend(evidence.bombs)
    if evidence.bombs:
        symbols.append(Symbol("AV_ARCHIVE_BOMB", tuple(evidence.bombs)))
    unscannable = [f"{p}: too large" for p in _unique(too_large)] + _unique(limits)
    if unscannable:
        facts["unscannable"] = unscannable
    force = None
    if unscannable and settings.on_unscannable != "accept":
        kind = ForceKind.QUARANTINE if settings.on_unscannable == "quarantine" else ForceKind.REJECT
        force = Force(
            kind,
            "not fully scanned for viruses (" + "; ".join(unscannable) + ")",
            NAME,
            reply_text="Message could not be fully scanned for viruses",
        )
    return FilterResult(
        symbols=tuple(symbols),
        force=force,
        infections=tuple(infections.values()),
        facts=facts,
    )


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))
