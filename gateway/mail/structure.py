"""The MIME skeleton of a message, read before any parser touches it.

Two things are decided here, on the raw bytes and in one pass over the header
blocks and boundary lines only:

- limits: how deep multiparts and embedded messages nest and how many entities
  there are. Python's email parser recurses per level (a thousand levels raise
  RecursionError), so a message over the limits is refused before it is parsed.
- ambiguity: a header block with two Content-Type (or Content-Transfer-Encoding,
  Content-Disposition) fields, or a Content-Type with two boundary (or charset,
  name) parameters, is read one way by us and another by some mail client. Such
  structure is reported so the message can be held instead of judged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

STRUCTURAL = (b"content-type", b"content-transfer-encoding", b"content-disposition")
SINGLE_PARAMS = frozenset({"boundary", "charset", "name", "filename"})

_FIELD_NAME = re.compile(rb"^([\x21-\x39\x3b-\x7e]+)[ \t]*:")
_PARAM = re.compile(
    r""";\s*([!#$%&'*+.^_`|~0-9A-Za-z-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;\s]*)""", re.S
)
_SECTION = re.compile(r"^(.*?)(\*\d+)?\*?$")


@dataclass(frozen=True)
class Structure:
    depth: int  # deepest nesting of multiparts and embedded messages (0: single part)
    entities: int  # header blocks: the message itself, every part, every embedded message
    exceeded: str | None = None  # which limit was passed, in words; scanning stopped there
    ambiguities: tuple[str, ...] = ()  # e.g. "part 2: two boundary parameters"


def _header_block(raw: bytes, pos: int) -> tuple[list[tuple[bytes, bytes]], int]:
    """(name, unfolded value) fields from pos to the empty line; the body's offset."""
    fields: list[tuple[bytes, bytes]] = []
    size = len(raw)
    while pos < size:
        end = raw.find(b"\n", pos)
        end = size if end < 0 else end + 1
        line = raw[pos:end]
        if line in (b"\r\n", b"\n"):
            return fields, end
        if line[:1] in (b" ", b"\t"):
            if fields:
                name, value = fields[-1]
                fields[-1] = (name, value + b" " + line.strip())
        else:
            match = _FIELD_NAME.match(line)
            if not match:
                return fields, pos  # no empty line: the body starts here
            fields.append((match.group(1).lower(), line[match.end() :].strip()))
        pos = end
    return fields, size


def content_params(value: str) -> list[tuple[str, str]]:
    """(lower-cased name, value) of every parameter, RFC 2231 sections kept apart."""
    return [(m.group(1).lower(), m.group(2).strip('"')) for m in _PARAM.finditer(value)]


def _analyse(
    fields: list[tuple[bytes, bytes]], where: str, ambiguities: list[str]
) -> tuple[str, str | None]:
    """The media type and boundary of one header block; ambiguities appended."""
    seen: dict[bytes, int] = {}
    for name, _ in fields:
        if name in STRUCTURAL:
            seen[name] = seen.get(name, 0) + 1
    for name, count in seen.items():
        if count > 1:
            ambiguities.append(f"{where}: {count} {name.decode().title()} fields")
    ctype = next((v for n, v in fields if n == b"content-type"), b"")
    text = ctype.decode("latin-1")
    media = text.split(";", 1)[0].strip().lower()
    params = content_params(text)
    counted: dict[tuple[str, str | None], int] = {}
    for param, _ in params:
        match = _SECTION.match(param)
        base, section = (match.group(1), match.group(2)) if match else (param, None)
        if base in SINGLE_PARAMS:
            counted[(base, section)] = counted.get((base, section), 0) + 1
    for (base, _), count in counted.items():
        if count > 1:
            ambiguities.append(f"{where}: {count} {base} parameters")
    boundary = next((v for n, v in params if n == "boundary"), None)
    return media, boundary


def scan_structure(raw: bytes, max_depth: int = 50, max_entities: int = 10_000) -> Structure:
    """The skeleton of `raw` (CRLF or LF line endings), stopping at the first limit."""
    ambiguities: list[str] = []
    stack: list[_Open] = []  # open multiparts, innermost last
    depth = deepest = entities = 0
    pos, part_id = 0, ""
    while True:
        fields, pos = _header_block(raw, pos)
        entities += 1
        if entities > max_entities:
            return Structure(deepest, entities, f"more than {max_entities} MIME parts")
        media, boundary = _analyse(fields, f"part {part_id}" if part_id else "message", ambiguities)
        if media.startswith("multipart/") and boundary:
            depth += 1
            if depth > max_depth:
                return Structure(depth, entities, f"MIME nested deeper than {max_depth}")
            stack.append(_Open(b"--" + boundary.encode("latin-1"), depth, part_id))
        elif media in ("message/rfc822", "message/global") and not _at_delimiter(raw, pos, stack):
            depth += 1
            if depth > max_depth:
                return Structure(depth, entities, f"MIME nested deeper than {max_depth}")
            deepest = max(deepest, depth)
            continue  # the body is the embedded message's header block
        deepest = max(deepest, depth)
        found = _next_delimiter(raw, pos, stack)
        if found is None:
            return Structure(deepest, entities, None, tuple(ambiguities))
        pos, depth, part_id = found


@dataclass
class _Open:
    delimiter: bytes  # "--" + boundary
    depth: int
    part_id: str  # of the multipart itself ("" for the message)
    parts: int = 0


def _at_delimiter(raw: bytes, pos: int, stack: list[_Open]) -> bool:
    """Whether the body at pos starts with a delimiter line (an empty embedded message)."""
    end = raw.find(b"\n", pos)
    line = raw[pos : end if end >= 0 else len(raw)].rstrip(b"\r \t")
    return any(line in (o.delimiter, o.delimiter + b"--") for o in stack)


def _dash_lines(raw: bytes, pos: int):
    """(line without its line ending and trailing blanks, offset after it) of every
    line from pos on that starts with "--" (bytes.find: fast over base64 bodies)."""
    at_line_start = pos == 0 or raw[pos - 1 : pos] == b"\n"
    start = pos if at_line_start and raw.startswith(b"--", pos) else raw.find(b"\n--", pos) + 1
    while start > 0 or (start == 0 and raw.startswith(b"--")):
        end = raw.find(b"\n", start)
        after = len(raw) if end < 0 else end + 1
        yield raw[start:after].rstrip(b"\r\n \t"), after
        if end < 0:
            return
        start = raw.find(b"\n--", end) + 1
        if start == 0:
            return


def _next_delimiter(raw: bytes, pos: int, stack: list[_Open]) -> tuple[int, int, str] | None:
    """After the next delimiter line of any open multipart: (offset, depth, part id).
    A close delimiter pops its multipart (and those inside it); scanning goes on."""
    while stack:
        for line, end in _dash_lines(raw, pos):
            index = next(
                (
                    i
                    for i in range(len(stack) - 1, -1, -1)
                    if line in (stack[i].delimiter, stack[i].delimiter + b"--")
                ),
                None,
            )
            if index is None:
                continue
            del stack[index + 1 :]
            here = stack[index]
            if line == here.delimiter:
                here.parts += 1
                prefix = f"{here.part_id}." if here.part_id else ""
                return end, here.depth, f"{prefix}{here.parts}"
            stack.pop()
            pos = end
            break
        else:
            return None
    return None
