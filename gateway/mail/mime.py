"""Reading real-world MIME safely: leaf parts with stable ids, decoded payloads, text.

Mail in the wild declares charsets it does not use, claims base64 that is not,
nests a hundred levels deep. Every function here answers something usable and
never raises on bad input; what was wrong is reported as a flag on the part.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import email.message
import email.utils
import html.parser
import quopri
import re
from dataclasses import dataclass, field
from email.header import decode_header, make_header

from gateway.lazy import cached_property

MAX_DEPTH = 40  # deeper nesting is reported, not followed

# Charset labels seen in mail whose Python codec is missing or too narrow.
_CHARSET_ALIASES = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "cp936": "gb18030",
    "euc-cn": "gb18030",
    "hz-gb-2312": "hz",
    "big5": "big5hkscs",
    "x-big5": "big5hkscs",
    "ks_c_5601-1987": "cp949",
    "euc-kr": "cp949",
    "iso-8859-8-i": "iso-8859-8",
    "x-sjis": "shift_jis",
    "shift-jis": "shift_jis",
    "windows-874": "cp874",
    "x-mac-roman": "mac_roman",
    "unicode-1-1-utf-7": "utf-7",
    "us-ascii": "latin-1",  # mislabelled 8-bit text is common; latin-1 never fails
    "ascii": "latin-1",
    "iso-8859-1": "cp1252",  # what senders labelled latin-1 almost always mean
}


def codec_for(charset: str | None) -> str | None:
    """A Python codec name for a declared charset, or None if unknown."""
    if not charset:
        return None
    label = charset.strip().strip('"').lower()
    label = _CHARSET_ALIASES.get(label, label)
    try:
        return codecs.lookup(label).name
    except LookupError:
        return None


def decode_text(data: bytes, charset: str | None) -> str:
    """Bytes to text: the declared charset if it works, then utf-8, then cp1252."""
    for candidate in (codec_for(charset), "utf-8"):
        if candidate:
            try:
                return data.decode(candidate)
            except (UnicodeDecodeError, LookupError):
                pass
    if codec_for(charset):
        return data.decode(codec_for(charset) or "utf-8", errors="replace")
    return data.decode("cp1252", errors="replace")


def header_values(msg: email.message.Message, name: str) -> list[str]:
    """All values of a header as readable text; malformed encodings never raise."""
    values = []
    for raw in msg.get_all(name, []) or []:
        text = raw if isinstance(raw, str) else str(raw)
        if "=?" in text:
            text = decode_rfc2047(text)
        values.append(" ".join(text.split()) if "\n" in text else text)
    return values


def decode_rfc2047(value: str) -> str:
    """Decode encoded-words (=?gb2312?B?...?=) with charset fallbacks."""
    try:
        return str(make_header(decode_header(value)))
    except Exception:  # noqa: BLE001 - unknown charset or broken encoding
        out = []
        try:
            chunks = decode_header(value)
        except Exception:  # noqa: BLE001
            return value
        for chunk, charset in chunks:
            out.append(chunk if isinstance(chunk, str) else decode_text(chunk, charset))
        return "".join(out)


@dataclass(frozen=True)
class Part:
    """One leaf of the MIME tree.

    `part_id` numbers parts like IMAP sections: "1", "2.1" (the first part of the
    second part); the body of a message/rfc822 part is numbered below it.
    """

    part_id: str
    content_type: str
    filename: str | None
    charset: str | None
    transfer_encoding: str
    payload: bytes  # after transfer decoding
    depth: int
    flags: frozenset[str] = field(default_factory=frozenset)  # e.g. {"bad_base64"}

    @property
    def is_text(self) -> bool:
        return self.content_type.startswith("text/") and not self.filename

    def text(self) -> str:
        """The part as text (HTML converted to plain text); computed once per part."""
        return self._read[0]

    def links(self) -> list[str]:
        """The href/src values of an HTML part ([] for any other part)."""
        return list(self._read[1])

    @cached_property
    def _read(self) -> tuple[str, tuple[str, ...]]:
        """Text and links from one decoding and, for HTML, one parse: the blocklist's
        URLs, the rules' body and URLs all read the same part (frozen fields stay
        untouched: the cache lives in the instance dict, outside eq and hash)."""
        body = decode_text(self.payload, self.charset)
        if self.content_type == "text/html":
            return _html_read(body)
        return body, ()


_UU_CTES = ("x-uuencode", "uuencode", "x-uue", "uue")


def decode_payload(part: email.message.Message) -> tuple[bytes, frozenset[str]]:
    """Transfer-decode a leaf part: base64, quoted-printable, uuencode, 7bit/8bit."""
    cte = str(part.get("content-transfer-encoding", "7bit")).strip().lower()
    raw = part.get_payload(decode=False)
    if isinstance(raw, list):  # a multipart seen as leaf (depth limit)
        return b"", frozenset({"not_leaf"})
    if isinstance(raw, str) and not raw.isascii() and cte not in ("base64", *_UU_CTES):
        # decode=False decodes raw 8-bit bytes with the declared charset (ASCII when
        # none) and errors="replace": an undeclared GB2312 body becomes U+FFFD. decode=True
        # returns the bytes as received (undoing quoted-printable itself).
        return bytes(part.get_payload(decode=True) or b""), frozenset()
    data = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else bytes(raw or b"")
    flags: set[str] = set()
    if cte == "base64":
        compact = re.sub(rb"[^A-Za-z0-9+/=]", b"", data)
        if re.search(rb"[^A-Za-z0-9+/=\s]", data):
            flags.add("bad_base64")
        compact = compact.rstrip(b"=")
        compact += b"=" * (-len(compact) % 4)
        try:
            return base64.b64decode(compact), frozenset(flags)
        except (binascii.Error, ValueError):
            flags.add("bad_base64")
            return data, frozenset(flags)
    if cte == "quoted-printable":
        return quopri.decodestring(data), frozenset(flags)
    if cte in _UU_CTES:
        decoded = uudecode(data)
        if decoded is None:
            flags.add("bad_uuencode")
            return data, frozenset(flags)
        return decoded, frozenset(flags)
    return data, frozenset(flags)


_UU_BEGIN = re.compile(rb"^begin [0-7]{3,4} (.+?)\r?$", re.M)


def uudecode(data: bytes) -> bytes | None:
    """Decode the first uuencoded block in data, or None if there is none."""
    match = _UU_BEGIN.search(data)
    if not match:
        return None
    out = bytearray()
    for line in data[match.end() :].splitlines()[1:]:
        if line.strip() in (b"end", b"`", b""):
            if line.strip() == b"end":
                break
            continue
        try:
            out += binascii.a2b_uu(line)
        except binascii.Error:
            # tolerate lines padded wrongly by some encoders
            try:
                nbytes = (((line[0] - 32) & 63) * 4 + 5) // 3
                out += binascii.a2b_uu(line[:nbytes])
            except (binascii.Error, IndexError):
                return bytes(out) or None
    return bytes(out)


def uuencoded_blocks(text_payload: bytes) -> list[tuple[str, bytes]]:
    """Inline uuencoded files inside a text body: (name, bytes) for each."""
    blocks = []
    for match in _UU_BEGIN.finditer(text_payload):
        decoded = uudecode(text_payload[match.start() :])
        if decoded:
            blocks.append((match.group(1).decode("latin-1").strip(), decoded))
    return blocks


def part_filename(part: email.message.Message) -> str | None:
    """The attachment name from Content-Disposition or Content-Type (RFC 2231 / 2047)."""
    try:
        name = part.get_filename() or part.get_param("name")
    except Exception:  # noqa: BLE001
        name = None
    if isinstance(name, tuple):  # RFC 2231 triple
        try:
            name = email.utils.collapse_rfc2231_value(name)
        except Exception:  # noqa: BLE001
            name = str(name[2])
    if name is None:
        return None
    name = str(name)
    if "=?" in name:
        name = decode_rfc2047(name)
    return name


def leaf_parts(msg: email.message.Message, prefix: str = "", depth: int = 0):
    """Yield every leaf `Part`, following multiparts and message/rfc822 bodies."""
    if msg.is_multipart():
        children: list[email.message.Message] = msg.get_payload()  # type: ignore[assignment]
        if depth >= MAX_DEPTH:
            yield _leaf(msg, prefix or "1", depth, {"too_deep"})
            return
        if msg.get_content_maintype() != "multipart":
            # message/rfc822: one child, the embedded message, numbered below this part
            for child in children:
                yield from leaf_parts(child, prefix or "1", depth + 1)
            return
        for index, child in enumerate(children, start=1):
            yield from leaf_parts(child, f"{prefix}.{index}" if prefix else str(index), depth + 1)
        return
    yield _leaf(msg, prefix or "1", depth, set())


def _leaf(part: email.message.Message, part_id: str, depth: int, flags: set[str]) -> Part:
    payload, decode_flags = decode_payload(part)
    try:
        ctype = part.get_content_type()
    except Exception:  # noqa: BLE001
        ctype = "application/octet-stream"
    try:
        charset = part.get_content_charset()
    except Exception:  # noqa: BLE001
        charset = None
    cte = str(part.get("content-transfer-encoding", "7bit")).strip().lower()
    return Part(
        part_id=part_id,
        content_type=ctype,
        filename=part_filename(part),
        charset=charset,
        transfer_encoding=cte,
        payload=payload,
        depth=depth,
        flags=frozenset(flags) | decode_flags,
    )


class _HtmlText(html.parser.HTMLParser):
    """The stdlib's HTML parser collecting visible text and href/src values: the
    reference reading (`_FastHtmlText` gives the same, faster)."""

    _SKIP = frozenset({"script", "style", "head", "title"})
    _BREAK = frozenset({"br", "p", "div", "tr", "li", "h1", "h2", "h3", "h4", "td", "table", "hr"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.hrefs: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag, attrs):
        if tag in self._SKIP:
            self._skipping += 1
        elif tag in self._BREAK:
            self.out.append("\n")
        for key, value in attrs:
            if key in ("href", "src") and value:
                self.hrefs.append(value)

    def handle_endtag(self, tag):
        if tag in self._SKIP and self._skipping:
            self._skipping -= 1
        elif tag in self._BREAK:
            self.out.append("\n")

    def handle_data(self, data):
        if not self._skipping:
            self.out.append(data)


# Start and end tags written plainly (most of real mail's HTML): html.parser makes the
# same events of them as of any tag, found here with one match instead of three and one
# per attribute. Anything else (odd names or values, tags that switch html.parser to
# raw text: script, style, title, textarea...) takes html.parser's own code.
_WS = r"[ \t\n\r\f]"
_PLAIN_START = re.compile(
    rf"""<([a-zA-Z][a-zA-Z0-9]*)((?:{_WS}+[a-zA-Z_:][-a-zA-Z0-9_:.]*"""
    rf"""(?:{_WS}*={_WS}*(?:"[^"]*"|'[^']*'|[^\s"'=<>`/]+(?=[\s>])))?)*){_WS}*(/?)>"""
)
_PLAIN_ATTR = re.compile(
    rf"""{_WS}+([a-zA-Z_:][-a-zA-Z0-9_:.]*)(?:{_WS}*={_WS}*("[^"]*"|'[^']*'|[^\s"'=<>`/]+))?"""
)
_PLAIN_END = re.compile(r"</([a-zA-Z][a-zA-Z0-9]*)>")
# elements after which html.parser reads raw text, in this Python or a later one
_RAW_TEXT = frozenset({"script", "style", "title", "textarea", "xmp", "iframe", "noembed"})
_RAW_TEXT |= {"noframes", "noscript", "plaintext"}


class _FastHtmlText(_HtmlText):
    """`_HtmlText` with plainly written tags read by one match each, and no line
    numbers kept (`updatepos`: nothing here reads them). The same text and links as
    `_HtmlText` (tests/unit/gateway/mail/test_html_reading.py compares them)."""

    def updatepos(self, i: int, j: int) -> int:
        return j

    def parse_starttag(self, i: int) -> int:
        match = _PLAIN_START.match(self.rawdata, i)
        if match is None:
            return super().parse_starttag(i)
        tag = match.group(1).lower()
        if tag in _RAW_TEXT:
            return super().parse_starttag(i)
        self.lasttag = tag
        attrs: list[tuple[str, str | None]] = []
        if match.group(2):
            for name, written in _PLAIN_ATTR.findall(match.group(2)):
                # html.parser: None without "=", unquoted, unescaped when not empty
                value: str | None = None
                if written:
                    value = written[1:-1] if written[:1] in ("'", '"') else written
                    value = html.unescape(value) if value else value
                attrs.append((name.lower(), value))
        if match.group(3):
            self.handle_startendtag(tag, attrs)
        else:
            self.handle_starttag(tag, attrs)
        return match.end()

    def parse_endtag(self, i: int) -> int:
        if self.cdata_elem is None:
            match = _PLAIN_END.match(self.rawdata, i)
            if match is not None:
                self.handle_endtag(match.group(1).lower())
                return match.end()
        return super().parse_endtag(i)


_READER: type[_HtmlText] = _FastHtmlText


def _html_read(markup: str) -> tuple[str, tuple[str, ...]]:
    """Visible text and href/src links of an HTML document, in one parse."""
    return _html_read_with(_READER, markup)


def _html_read_with(reader: type[_HtmlText], markup: str) -> tuple[str, tuple[str, ...]]:
    parser = reader()
    try:
        parser.feed(markup)
        parser.close()
    except Exception:  # noqa: BLE001 - html.parser rarely fails, but garbage is garbage
        return re.sub(r"<[^>]*>", " ", markup), tuple(parser.hrefs)
    return re.sub(r"[ \t\r\f\v]+", " ", "".join(parser.out)), tuple(parser.hrefs)


def html_to_text(markup: str) -> str:
    """Visible text of an HTML document (scripts, styles and tags dropped)."""
    return _html_read(markup)[0]


def html_links(markup: str) -> list[str]:
    return list(_html_read(markup)[1])


# (?i)\b(?:https?://|www\.)... spelt out: the engine then skips ahead to an h or a w (1.6x
# faster); \u017f is the long s, which IGNORECASE matches as s (no other letter folds)
_URL = re.compile(
    r"""(?=[hHwW])\b(?:[hH][tT][tT][pP][sS\u017f]?://|[wW][wW][wW]\.)[^\s<>"'()\[\]{}]+"""
)


def extract_urls(text: str) -> list[str]:
    """http(s) and www. URLs in text, trailing punctuation trimmed."""
    return [url.rstrip(".,;:!?") for url in _URL.findall(text)]


def url_domain(url: str) -> str | None:
    """The host of a URL, lower-cased, without port or credentials."""
    rest = re.sub(r"(?i)^[a-z][a-z0-9+.-]*://", "", url.strip())
    host = re.split(r"[/?#]", rest, maxsplit=1)[0].rsplit("@", 1)[-1]
    host = host.split(":", 1)[0].strip(".").lower()
    return host or None


def body_text(parts: tuple[Part, ...] | list[Part], limit: int = 200_000) -> str:
    """The readable text of a message: text/plain, else HTML converted, up to limit chars."""
    plain = [p for p in parts if p.is_text and p.content_type == "text/plain"]
    htmls = [p for p in parts if p.is_text and p.content_type == "text/html"]
    chosen = plain or htmls
    text = "\n".join(p.text() for p in chosen)
    return text[:limit]


_WEB_LINK = re.compile(r"(?i)^\s*(?:https?:)?//|^\s*www\.")


def message_urls(parts: tuple[Part, ...] | list[Part], limit: int = 1000) -> list[str]:
    """Every web URL of a message, in order, without repeats: those written in text
    parts (plain or HTML) and the href/src links of HTML parts, which readers click
    without ever seeing the address."""
    seen: dict[str, None] = {}
    for part in parts:
        if not part.is_text:
            continue
        found = extract_urls(part.text())
        if part.content_type == "text/html":
            for link in part.links():
                if _WEB_LINK.match(link):
                    link = link.strip()
                    found.append("http:" + link if link.startswith("//") else link)
        for url in found:
            if len(seen) >= limit:
                return list(seen)
            seen.setdefault(url, None)
    return list(seen)
