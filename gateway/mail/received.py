"""From received bytes to a MessageContext, the one way (SMTP intake, scan, eval).

What a line ending is gets decided here, once: CRLF, a bare LF and a bare CR
all end a line, and each becomes CRLF. Stripping our own headers, every filter
and the rendered copy then see the same lines, so a header joined to the one
before it by a lone CR cannot hide from the strip and reappear as a real header
when the next hop normalises the copy. NUL bytes are removed (RFC 5321 4.5.2
lets a server drop what it cannot pass on); the notes say what was found.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from gateway.model import Envelope, MessageContext

_LINE_END = re.compile(rb"\r\n|\r|\n")


def normalise(raw: bytes) -> tuple[bytes, frozenset[str]]:
    """CRLF line endings throughout, NULs removed; notes: bare_lf, bare_cr, nul."""
    notes = set()
    if b"\0" in raw:
        raw = raw.replace(b"\0", b"")
        notes.add("nul")
    rest = raw.replace(b"\r\n", b"")
    if b"\n" in rest:
        notes.add("bare_lf")
    if b"\r" in rest:
        notes.add("bare_cr")
    if {"bare_lf", "bare_cr"} & notes:
        raw = _LINE_END.sub(b"\r\n", raw)
    return raw, frozenset(notes)


def received_context(
    queue_id: str,
    envelope: Envelope,
    raw: bytes,
    received_at: datetime | None = None,
) -> MessageContext:
    """The MessageContext of bytes as a client sent them."""
    raw, notes = normalise(raw)
    return MessageContext(queue_id, envelope, raw, received_at or datetime.now(UTC), notes)
