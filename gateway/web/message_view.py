"""A quarantined message as the console shows it: headers, text, sanitised HTML,
attachments listed (never rendered).

The HTML goes through nh3 with no scripts, no styles, no images, no forms, no
frames, no event handlers and no links that can be followed (anchors lose their
href; the addresses are listed as text beside it). It is then shown only inside
a sandboxed iframe served with `Content-Security-Policy: default-src 'none'`, so
even a sanitiser bug cannot run code or load anything.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import nh3

from gateway.mail.mime import Part, decode_rfc2047, decode_text, html_links, leaf_parts
from gateway.model import parse_message

ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "caption", "code", "dd", "div", "dl", "dt", "em",
    "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "li", "ol", "p", "pre", "q", "s",
    "small", "span", "strong", "sub", "sup", "table", "tbody", "td", "tfoot", "th",
    "thead", "tr", "u", "ul",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {"td": {"colspan", "rowspan"}, "th": {"colspan", "rowspan"}}
SHOWN_HEADERS = ("From", "To", "Cc", "Reply-To", "Subject", "Date", "Message-ID", "Return-Path")
MAX_TEXT = 200_000


@dataclass(frozen=True)
class Attachment:
    part_id: str
    content_type: str
    filename: str | None
    size: int
    sha256: str


@dataclass
class MessageView:
    headers: list[tuple[str, str]] = field(default_factory=list)
    all_headers: list[tuple[str, str]] = field(default_factory=list)
    text: str = ""
    html: str | None = None  # sanitised
    links: list[str] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)


def sanitise(markup: str) -> str:
    """HTML with nothing active and nothing that loads or navigates."""
    return nh3.clean(
        markup,
        tags=ALLOWED_TAGS,
        clean_content_tags={"script", "style"},
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=set(),
        link_rel=None,
        strip_comments=True,
    )


def _is_attachment(part: Part) -> bool:
    return bool(part.filename) or not part.content_type.startswith(("text/plain", "text/html"))


def read(raw: bytes) -> MessageView:
    msg = parse_message(raw)
    view = MessageView()
    for name, value in msg.items():
        view.all_headers.append((name, _printable(decode_rfc2047(str(value)))))
    wanted = {h.lower() for h in SHOWN_HEADERS}
    view.headers = [(n, v) for n, v in view.all_headers if n.lower() in wanted]
    for part in leaf_parts(msg):
        if _is_attachment(part):
            view.attachments.append(
                Attachment(
                    part.part_id,
                    part.content_type,
                    part.filename,
                    len(part.payload),
                    hashlib.sha256(part.payload).hexdigest(),
                )
            )
            continue
        body = decode_text(part.payload, part.charset)
        if part.content_type == "text/html" and view.html is None:
            view.html = sanitise(body[:MAX_TEXT])
            view.links = list(dict.fromkeys(html_links(body)))[:200]
        elif part.content_type == "text/plain" and not view.text:
            view.text = body[:MAX_TEXT]
    if not view.text and view.html is not None:
        view.text = nh3.clean(view.html, tags=set())
    return view


def part_bytes(raw: bytes, part_id: str) -> Part | None:
    for part in leaf_parts(parse_message(raw)):
        if part.part_id == part_id:
            return part
    return None


def _printable(text: str) -> str:
    """Control characters shown as escapes, never sent raw to a page or a terminal."""
    return "".join(c if c.isprintable() or c == " " else f"\\x{ord(c):02x}" for c in text)
