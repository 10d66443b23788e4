"""Replace MIME leaf parts in the raw bytes, leaving every other byte as received.

Antivirus cleaning swaps an infected attachment for a short text/plain notice.
Re-serialising the parsed message would rewrap headers and re-encode bodies of
the parts we did not touch (and break DKIM signatures of attachments that
were fine), so we edit the raw bytes between MIME boundaries instead.

`leaf_spans` finds each leaf's byte range by following the same rules as
Python's email.feedparser (which gateway.mail.mime.leaf_parts reads), so part ids
agree: "1", "2.1", message/rfc822 bodies numbered below their part, the same
depth limit. `replace_parts` refuses (MimeEditError) rather than guess: before
editing it checks that its numbering equals leaf_parts', and after editing it
re-parses the result and checks that each replaced part is now the notice and
every other leaf decodes to exactly the bytes it had.
"""

from __future__ import annotations

import base64
import email.parser
import email.policy
import re
from collections.abc import Sequence
from dataclasses import dataclass

from gateway.mail.mime import MAX_DEPTH, Part, leaf_parts
from gateway.model import PartNotice

_HEADER_LINE = re.compile(rb"From |[\x21-\x39\x3b-\x7e]*:|[\t ]")  # feedparser's headerRE
_NEWLINE = re.compile(rb"\r\n|\r|\n")
_EOL = re.compile(rb"(?:\r\n|\r|\n)\Z")
_HEADER_PARSER = email.parser.BytesParser(policy=email.policy.default)


class MimeEditError(Exception):
    """The message's structure could not be edited safely; nothing was changed."""


@dataclass(frozen=True)
class Span:
    """One leaf entity in the raw message: headers at [start, body_start), body to `end`."""

    part_id: str
    start: int
    body_start: int
    end: int  # the line break before the next boundary is not part of the body
    is_message: bool  # the entity is a whole (top-level or embedded) message
    too_deep: bool = False


def leaf_spans(raw: bytes) -> list[Span]:
    """Every leaf entity of `raw`, in leaf_parts order (one span per distinct id)."""
    out: list[Span] = []
    _walk(raw, 0, len(raw), "", 0, None, True, out)
    return out


def _lines(data: bytes, pos: int, end: int):
    """(start, stop) of each line in data[pos:end], line breaks included (universal)."""
    while pos < end:
        match = _NEWLINE.search(data, pos, end)
        stop = match.end() if match else end
        yield pos, stop
        pos = stop


def _header_end(data: bytes, start: int, end: int) -> tuple[int, int]:
    """(end of the header lines, start of the body), as feedparser splits them."""
    for line_start, line_stop in _lines(data, start, end):
        if _HEADER_LINE.match(data, line_start, line_stop):
            continue
        if _NEWLINE.match(data, line_start, line_stop):  # the blank separator line
            return line_start, line_stop
        return line_start, line_start  # no separator: this line is already body
    return end, end


def _boundary_lines(data: bytes, boundary: bytes, start: int, end: int):
    """(line start, after line, is_close) of each boundary line in data[start:end]."""
    pattern = re.compile(rb"--" + re.escape(boundary) + rb"(--)?[ \t]*(?:\r\n|\r|\n|\Z)")
    pos = start
    while True:
        match = pattern.search(data, pos, end)
        if not match:
            return
        at = match.start()
        if at == start or data[at - 1] in b"\r\n":
            yield at, match.end(), bool(match.group(1))
        pos = at + 1


def _strip_eol(data: bytes, start: int, end: int) -> int:
    """RFC 2046: the line break before a boundary belongs to the boundary."""
    match = _EOL.search(data, start, end)
    return match.start() if match else end


def _walk(
    data: bytes,
    start: int,
    end: int,
    prefix: str,
    depth: int,
    default_type: str | None,
    is_message: bool,
    out: list[Span],
) -> None:
    header_end, body_start = _header_end(data, start, end)
    headers = _HEADER_PARSER.parsebytes(data[start:header_end], headersonly=True)
    if default_type:
        headers.set_default_type(default_type)
    try:
        ctype = headers.get_content_type()  # parsed once: policy.default parsing is costly
        maintype = ctype.split("/")[0]
    except Exception as exc:  # noqa: BLE001 - garbage headers; refuse rather than guess
        raise MimeEditError(f"unreadable Content-Type: {exc}") from None
    part_id = prefix or "1"

    def leaf(too_deep: bool = False) -> None:
        out.append(Span(part_id, start, body_start, end, is_message, too_deep))

    if ctype == "message/delivery-status":
        leaf()  # header blocks without bodies: leaf_parts gives them all this one id
        return
    if maintype == "message":
        if depth >= MAX_DEPTH:
            leaf(too_deep=True)
            return
        _walk(data, body_start, end, part_id, depth + 1, None, True, out)
        return
    if maintype != "multipart":
        leaf()
        return
    boundary = headers.get_boundary()
    if boundary is None:
        leaf()
        return
    children = _split_multipart(data, boundary.encode("ascii", "surrogateescape"), body_start, end)
    if children is None:
        leaf()  # no opening boundary: feedparser keeps the body as one payload
        return
    if depth >= MAX_DEPTH:
        leaf(too_deep=True)
        return
    child_default = "message/rfc822" if ctype == "multipart/digest" else None
    for index, (child_start, child_end) in enumerate(children, start=1):
        child_id = f"{prefix}.{index}" if prefix else str(index)
        _walk(data, child_start, child_end, child_id, depth + 1, child_default, False, out)


def _split_multipart(
    data: bytes, boundary: bytes, start: int, end: int
) -> list[tuple[int, int]] | None:
    """Byte ranges of the subparts, or None when the body has no opening boundary."""
    lines = list(_boundary_lines(data, boundary, start, end))
    if not lines or lines[0][2]:
        return None  # feedparser: a closing boundary before any opening one is no start
    children: list[tuple[int, int]] = []
    index = 0
    while index < len(lines):
        _, after, is_close = lines[index]
        if is_close and index > 0:
            break
        # consecutive boundary lines (closing ones too) are skipped as one separator
        while index + 1 < len(lines) and lines[index + 1][0] == after:
            index += 1
            after = lines[index][1]
        next_at = lines[index + 1][0] if index + 1 < len(lines) else end
        children.append((after, _strip_eol(data, after, next_at)))
        index += 1
    return children


def _newline_of(data: bytes, start: int, end: int) -> bytes:
    match = _NEWLINE.search(data, start, end) or _NEWLINE.search(data)
    return match.group(0) if match else b"\r\n"


def _notice_entity(data: bytes, span: Span, text: str) -> bytes:
    """The span's non-Content-* headers, then a text/plain part holding `text`."""
    nl = _newline_of(data, span.start, span.end)
    kept: list[bytes] = []
    keep = True
    header_end, _ = _header_end(data, span.start, span.end)
    for line_start, line_stop in _lines(data, span.start, header_end):
        line = data[line_start:line_stop]
        if line[:1] not in (b" ", b"\t"):
            name = line.split(b":", 1)[0].strip().lower()
            keep = not name.startswith(b"content-")
        if keep:
            kept.append(line if _NEWLINE.search(line) else line + nl)
    lines = text.rstrip("\r\n").splitlines() or [""]
    if all(line.isascii() and not line.startswith("-") and len(line) < 990 for line in lines):
        cte, encoded = "7bit", nl.join(line.encode("ascii") for line in lines) + nl
    else:  # base64 cannot contain a line that looks like a boundary
        data = base64.encodebytes("\n".join(lines).encode("utf-8") + b"\n")
        cte, encoded = "base64", nl.join(data.splitlines()) + nl
    added = [
        b'Content-Type: text/plain; charset="utf-8"',
        b"Content-Transfer-Encoding: " + cte.encode(),
        b"Content-Disposition: inline",
    ]
    if span.is_message and not any(k.lower().startswith(b"mime-version:") for k in kept):
        added.insert(0, b"MIME-Version: 1.0")
    return b"".join(kept) + nl.join(added) + nl + nl + encoded


def replace_parts(
    raw: bytes, notices: Sequence[PartNotice], parts: Sequence[Part] | None = None
) -> bytes:
    """`raw` with each noticed leaf part replaced by a text/plain notice.

    Part ids are gateway.mail.mime.leaf_parts ids; `parts` may pass leaf_parts of
    `raw` already parsed (MessageContext.parts) to save parsing it again. Every
    byte outside the replaced parts stays as it was. Raises MimeEditError (and
    changes nothing) when a part id does not exist or the structure cannot be
    edited safely.
    """
    if not notices:
        return raw
    before = list(parts) if parts is not None else _parsed_leaves(raw)
    wanted: dict[str, str] = {}
    blocks: dict[str, list[PartNotice]] = {}
    leaves = {p.part_id: p for p in before}
    for notice in notices:
        part = leaves.get(notice.part_id)
        if notice.block and part is not None and part.transfer_encoding in _PLAIN_CTES:
            blocks.setdefault(notice.part_id, []).append(notice)
        else:
            wanted.setdefault(notice.part_id, notice.text)
    for part_id in set(blocks) & set(wanted):
        del blocks[part_id]  # the whole part goes anyway
    spans = leaf_spans(raw)
    if [s.part_id for s in spans] != _unique(p.part_id for p in before):
        raise MimeEditError("MIME structure is ambiguous; part numbering does not agree")
    by_id = {s.part_id: s for s in spans}
    missing = sorted(set(wanted) - set(by_id))
    if missing:
        raise MimeEditError(f"no such MIME part: {', '.join(missing)}")
    missing = sorted(set(blocks) - set(by_id))
    if missing:
        raise MimeEditError(f"no such MIME part: {', '.join(missing)}")
    edits: dict[str, bytes] = {}
    for part_id, block_notices in blocks.items():
        span = by_id[part_id]
        body = _without_blocks(raw[span.body_start : span.end], block_notices)
        if body is None:  # the block is not where we can cut it out: the whole part goes
            wanted[part_id] = "".join(n.text for n in block_notices)
        else:
            edits[part_id] = body
    out = raw
    changes = [(by_id[p], None) for p in wanted] + [(by_id[p], b) for p, b in edits.items()]
    for span, body in sorted(changes, key=lambda c: c[0].start, reverse=True):
        if body is None:
            new = _notice_entity(raw, span, wanted[span.part_id])
            out = out[: span.start] + new + out[span.end :]
        else:
            out = out[: span.body_start] + body + out[span.end :]
    _verify(before, _parsed_leaves(out), wanted, edits)
    return out


_PLAIN_CTES = ("7bit", "8bit", "binary")


def _without_blocks(body: bytes, notices: Sequence[PartNotice]) -> bytes | None:
    """The text body with each named uuencoded block (begin ... end) replaced by its
    notice, the rest kept byte for byte; None if a block is not found."""
    nl = _newline_of(body, 0, len(body))
    for notice in notices:
        name = re.escape((notice.block or "").encode("utf-8", "surrogateescape"))
        found = re.search(rb"(?m)^begin [0-7]{3,4} [ \t]*" + name + rb"[ \t]*\r?$", body)
        if found is None:
            return None
        end = re.compile(rb"(?m)^end[ \t]*\r?$").search(body, found.end())
        stop = end.end() if end else len(body)
        text = nl.join(line.encode("utf-8") for line in notice.text.rstrip("\r\n").splitlines())
        body = body[: found.start()] + text + body[stop:]
    return body


def _parsed_leaves(raw: bytes) -> list:
    return list(leaf_parts(_HEADER_PARSER.parsebytes(raw)))


def _unique(ids) -> list[str]:
    out: list[str] = []
    for part_id in ids:
        if not out or out[-1] != part_id:
            out.append(part_id)
    return out


def _verify(
    before: list, after: list, wanted: dict[str, str], edits: dict[str, bytes] | None = None
) -> None:
    """The edited message must parse to the same leaves, with only the noticed ones changed."""
    old = {p.part_id: p for p in before}
    new = {p.part_id: p for p in after}
    if _unique(p.part_id for p in after) != _unique(p.part_id for p in before):
        raise MimeEditError("editing changed the MIME structure")
    for part_id, part in new.items():
        if part_id in wanted:
            expected = wanted[part_id].splitlines()
            if part.content_type != "text/plain" or part.text().splitlines() != expected:
                raise MimeEditError(f"part {part_id} was not replaced cleanly")
        elif edits and part_id in edits:
            if part.payload != edits[part_id] or part.content_type != old[part_id].content_type:
                raise MimeEditError(f"part {part_id} was not edited cleanly")
        elif part.payload != old[part_id].payload or part.filename != old[part_id].filename:
            raise MimeEditError(f"part {part_id} would have changed")
