"""Checks on the message itself that need no outside service: headers, MIME, size.

Each finding is a symbol; none of them rejects on its own (weights decide), except
ambiguous MIME structure, which is held in quarantine: a message that mail clients
may read differently from us (two boundaries, two Content-Types) cannot be judged.
"""

from __future__ import annotations

import email.utils

from filters.base import NoLookup, Scope
from gateway.mail.render import has_long_lines
from gateway.model import FilterResult, Force, ForceKind, MessageContext, Symbol

LARGE = 10 * 1024 * 1024


def _header_block(raw: bytes) -> bytes:
    end = raw.find(b"\r\n\r\n")
    return raw if end < 0 else raw[:end]


class MessageChecks(NoLookup):
    name = "message"
    reads_parts_only = True  # headers, parts and the raw bytes: never the text or links

    def evaluate(self, ctx: MessageContext, evidence: None, scope: Scope) -> FilterResult:
        msg = ctx.message
        symbols: list[Symbol] = []
        froms = msg.get_all("From") or []
        if not froms:
            symbols.append(Symbol("HEADER_MISSING_FROM"))
        elif len(froms) > 1:
            symbols.append(Symbol("HEADER_MULTIPLE_FROM"))
        dates = ctx.header("Date")
        if not dates:
            symbols.append(Symbol("HEADER_MISSING_DATE"))
        elif _unparseable_date(dates[0]):
            symbols.append(Symbol("HEADER_BAD_DATE", (dates[0][:80],)))
        if not msg.get_all("Message-ID"):
            symbols.append(Symbol("HEADER_MISSING_MESSAGE_ID"))
        if len(msg.get_all("Subject") or []) > 1:
            symbols.append(Symbol("HEADER_MULTIPLE_SUBJECT"))
        env = ctx.envelope
        if not env.smtputf8 and not _header_block(ctx.raw).isascii():
            symbols.append(Symbol("HEADER_8BIT_RAW"))
        if not env.body_8bitmime and not env.smtputf8 and not ctx.raw.isascii():
            symbols.append(Symbol("BODY_8BIT_WITHOUT_8BITMIME"))
        if has_long_lines(ctx.raw):
            symbols.append(Symbol("LINE_TOO_LONG"))
        if "bare_lf" in ctx.intake_notes:
            symbols.append(Symbol("BARE_LF"))
        if "bare_cr" in ctx.intake_notes:
            symbols.append(Symbol("BARE_CR"))
        if "nul" in ctx.intake_notes:
            symbols.append(Symbol("NUL_BYTES"))
        flags = {flag for part in ctx.parts for flag in part.flags}
        if "too_deep" in flags:
            symbols.append(Symbol("MIME_TOO_DEEP"))
        if "bad_base64" in flags:
            symbols.append(Symbol("MIME_BAD_BASE64"))
        if len(ctx.raw) > LARGE:
            symbols.append(Symbol("SIZE_LARGE", (str(len(ctx.raw)),)))
        force = None
        ambiguities = ctx.structure.ambiguities
        if ambiguities:
            symbols.append(Symbol("MIME_AMBIGUOUS", tuple(ambiguities[:5])))
            reason = f"ambiguous MIME structure: {ambiguities[0]}"
            force = Force(ForceKind.QUARANTINE, reason, self.name)
        return FilterResult(symbols=tuple(symbols), force=force, facts={"parts": len(ctx.parts)})


def _unparseable_date(value: str) -> bool:
    try:
        return email.utils.parsedate_to_datetime(value) is None
    except (TypeError, ValueError, IndexError):
        return True
