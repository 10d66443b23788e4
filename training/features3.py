"""mw-features-3 evidence: structural tokens and binary byte 4-grams of the raw message.

Two blocks added to mw-features-2's words and character n-grams (training.features):

- `x.` tokens, hashed into a block of their own: field-prefixed header shapes (Content-Type
  parameters and boundary shape, Received hops' protocols and auth, Date and Message-ID
  layout, header order, X-Mailer name, Subject encoding), URL host, path and query pieces,
  HTML structure (hidden text, tiny fonts, white text, image-only bodies, link text naming
  another domain than its target, forms, scripts), attachment names and the facts the
  message checks compute (missing From/Date/Message-ID, unparseable date, raw 8-bit
  headers, over-long lines).
- binary byte 4-grams of the first RAW_HEAD bytes of a "raw view" of the message, as in
  Sculley's relaxed online SVM at TREC 2007: encodings, obfuscation and layout all count.
  The view keeps only headers a sender writes about the content (Subject, From, Reply-To,
  Content-*, MIME-Version, X-Mailer...), never Received, Date, recipients or
  authentication headers: in the public corpora those name the collecting site and the
  year (all ham is 1999-2007 mail, the modern mail all phishing), which would teach "DKIM
  means spam" and "2002 means ham". Digits become 0 and CRLF becomes LF for the same
  reason (phishing_pot is the only CRLF corpus). Hashing is numpy arithmetic on the bytes
  (about 50 us a message), not a Python loop over strings.
"""

from __future__ import annotations

import email.message
import email.utils
import re
from collections.abc import Sequence

import numpy as np

from gateway.mail import mime

EXTRA_PREFIX = "x."
RAW_HEAD = 3000
RAW_BITS = 20
RAW_FEATURES = 2**RAW_BITS
LONG_LINE = 998

_RAW_HEADERS = frozenset(
    {
        b"subject",
        b"from",
        b"reply-to",
        b"content-type",
        b"content-transfer-encoding",
        b"content-disposition",
        b"mime-version",
        b"x-mailer",
        b"user-agent",
        b"x-priority",
        b"x-msmail-priority",
        b"organization",
    }
)
_DIGITS0 = bytes.maketrans(b"123456789", b"000000000")
_HEADER_LINE = re.compile(rb"^([!-9;-~]+)[ \t]*:", re.M)
_LETTER_RUNS = re.compile(r"[A-Za-z]+")
_DIGIT_RUNS = re.compile(r"\d+")
_WORDS = re.compile(r"[a-z]{2,20}")
_PARAM = re.compile(r';\s*([A-Za-z0-9_.-]+)\s*=\s*("[^"]*"|[^;\s]*)')
_ORDER_NAMES = ("from", "to", "subject", "date", "message-id", "mime-version", "content-type")


# -- raw byte 4-grams ---------------------------------------------------------------------


def raw_view(raw: bytes) -> bytes:
    """Content headers and the body as sent (see module docstring), digits as 0, LF."""
    if raw.startswith(b"From "):  # an mbox envelope line, not part of the message
        raw = raw.split(b"\n", 1)[-1]
    raw = raw[: RAW_HEAD * 4].replace(b"\r\n", b"\n")
    end = raw.find(b"\n\n")
    head, body = (raw, b"") if end < 0 else (raw[:end], raw[end + 2 :])
    if not _HEADER_LINE.match(head):  # no header block: all of it is text
        head, body = b"", raw
    kept: list[bytes] = []
    keep = False
    for line in head.split(b"\n"):
        if line[:1] in (b" ", b"\t"):
            if keep:
                kept.append(line)
            continue
        name = line.split(b":", 1)[0].strip().lower()
        keep = name in _RAW_HEADERS
        if keep:
            kept.append(line)
    view = b"\n".join(kept) + b"\n\n" + body
    return view[:RAW_HEAD].translate(_DIGITS0)


def raw_grams(raw: bytes) -> np.ndarray:
    """Sorted distinct column indices (0..RAW_FEATURES-1) of the view's byte 4-grams.

    A sort and a mask: np.unique (numpy 2.3+: a hash table, then a sort) costs three
    times as much on these few thousand values."""
    grams = np.sort(_hashed_grams(raw_view(raw)))
    if grams.size > 1:
        fresh = np.empty(grams.size, dtype=bool)
        fresh[0] = True
        np.not_equal(grams[1:], grams[:-1], out=fresh[1:])
        grams = grams[fresh]
    return grams


def raw_gram_bytes(raw: bytes) -> dict[int, bytes]:
    """Column -> the first 4 bytes of the view hashed to it (to explain a score)."""
    view = raw_view(raw)
    out: dict[int, bytes] = {}
    for index, column in enumerate(_hashed_grams(view).tolist()):
        out.setdefault(column, view[index : index + 4])
    return out


def _hashed_grams(view: bytes) -> np.ndarray:
    data = np.frombuffer(view, dtype=np.uint8)
    if data.size < 4:
        return np.zeros(0, dtype=np.int32)
    a = data.astype(np.uint32)
    grams = (a[:-3] << 24) | (a[1:-2] << 16) | (a[2:-1] << 8) | a[3:]
    grams *= np.uint32(0x9E3779B1)  # modulo 2^32, in place
    grams >>= np.uint32(32 - RAW_BITS)
    return grams.astype(np.int32)


# -- structural tokens --------------------------------------------------------------------


def extra_tokens(
    msg: email.message.Message,
    parts: Sequence[mime.Part],
    headers: list[tuple[str, str]],
    markups: list[str],
    urls: list[str],
    raw: bytes | None,
) -> list[str]:
    """The `x.` tokens of one message (headers already decoded by the caller)."""
    out: list[str] = []
    if any(k != "subject" for k, _ in headers):
        _header_shapes(msg, headers, out)
        _check_facts(msg, raw, out)
    for markup in markups[:3]:
        _html_tokens(markup, out)
    _url_pieces(urls, out)
    _attachment_tokens(parts, out)
    return [EXTRA_PREFIX + t for t in out]


def shape(text: str, limit: int = 24) -> str:
    """Runs of ASCII letters as a, runs of digits as 9 (what [A-Za-z]+|\\d+ with a
    callback per match gave: the runs are disjoint, so two substitutions give the same)."""
    return _DIGIT_RUNS.sub("9", _LETTER_RUNS.sub("a", text))[:limit]


def _header_shapes(msg: email.message.Message, headers: list[tuple[str, str]], out: list[str]):
    first: dict[str, str] = {}
    order: list[str] = []
    hops = 0
    for name, value in headers:
        first.setdefault(name, value)
        if name in _ORDER_NAMES and name not in order:
            order.append(name)
        if name == "received" and hops < 4:
            flat = " ".join(value.lower().split())
            if " with " in flat:
                proto = flat.split(" with ", 1)[1].split()[0][:12]
                out.append(f"rcv:{hops}:with:{proto}")
            if "authenticated" in flat or "auth" in flat.split(" with ", 1)[-1][:20]:
                out.append(f"rcv:{hops}:auth")
            if " id " in flat:
                out.append(f"rcv:{hops}:id")
            if ";" in flat:
                out.append(f"rcv:{hops}:date:{shape(flat.rsplit(';', 1)[1].strip(), 30)}")
            hops += 1
    out.append("order:" + ">".join(order[:5]))
    ctype = first.get("content-type")
    if ctype:
        for pname, pvalue in _PARAM.findall(ctype)[:6]:
            pname = pname.lower()
            out.append("ct:param:" + pname)
            pvalue = pvalue.strip('"')
            if pname == "boundary":
                out.append("ct:boundary:" + shape(pvalue, 30))
            elif pname in ("charset", "format", "type", "delsp", "reply-type"):
                out.append(f"ct:{pname}:{pvalue.lower()[:20]}")
    date = first.get("date")
    if date:
        out.append("date:" + shape(date.strip(), 30))
    mailer = first.get("x-mailer") or first.get("user-agent")
    if mailer:
        out.append("xm:" + " ".join(_WORDS.findall(mailer.lower())[:4]))
    sender = first.get("from", "")
    display = sender.split("<", 1)[0].strip().strip('"')
    if display and "@" not in display:
        out.append("from:display:" + ("upper" if display.isupper() else shape(display, 8)))
    local = sender.rsplit("@", 1)[0].rsplit("<", 1)[-1] if "@" in sender else ""
    if local:
        out.append("from:local:" + shape(local, 12))
    raw_subject = next((str(v) for k, v in msg.raw_items() if k.lower() == "subject"), None)
    if raw_subject is not None:  # raw_items: the same text under every email policy
        low = raw_subject.lower().lstrip()
        if low.startswith(("re:", "fw:", "fwd:", "aw:")):
            out.append("subj:reply")
        for charset in re.findall(r"=\?([^?]+)\?", raw_subject)[:2]:
            out.append("subj:enc:" + charset.lower()[:16])
        if not raw_subject.isascii():
            out.append("subj:raw8bit")


def _check_facts(msg: email.message.Message, raw: bytes | None, out: list[str]) -> None:
    """What filters.message_checks finds, as tokens (the model learns their weight)."""
    counts: dict[str, int] = {}
    first_date = None
    for name, value in msg.raw_items():  # raw values: the same under every email policy
        name = name.lower()
        counts[name] = counts.get(name, 0) + 1
        if name == "date" and first_date is None:
            first_date = str(value)
    if "from" not in counts:
        out.append("mc:no_from")
    if "message-id" not in counts:
        out.append("mc:no_message_id")
    if first_date is None:
        out.append("mc:no_date")
    else:
        try:
            if email.utils.parsedate_to_datetime(" ".join(first_date.split())) is None:
                out.append("mc:bad_date")
        except (TypeError, ValueError, IndexError):
            out.append("mc:bad_date")
    if counts.get("subject", 0) > 1:
        out.append("mc:multiple_subject")
    if raw is not None:
        ends = [i for i in (raw.find(b"\n\n"), raw.find(b"\r\n\r\n")) if i >= 0]
        if not raw[: min(ends) if ends else 4096].isascii():
            out.append("mc:header_8bit")
        if _longest_line(raw[:200_000]) > LONG_LINE:
            out.append("mc:long_line")


def _longest_line(data: bytes) -> int:
    """Length of the longest LF-separated line (no list of lines: numpy on the bytes)."""
    ends = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10)
    bounds = np.concatenate(([-1], ends, [len(data)]))
    return int((np.diff(bounds) - 1).max())


_HIDDEN = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden")
_TINY = re.compile(
    r"font-size\s*:\s*[0-3](?:\.\d+)?\s*(?:px|pt)?\b|<font[^>]*size\s*=\s*[\"']?[01]\b"
)
_WHITE = re.compile(r"color\s*[:=]\s*[\"']?\s*(?:#fff(?:fff)?\b|white\b)")
_ANCHOR = re.compile(r"(?is)<a\b[^>]*?href\s*=\s*[\"']?([^\"'\s>]+)[^>]*>(.*?)</a\s*>")
_TAG_NAME = re.compile(r"(?i)<(img|form|script|iframe|object|embed|table|input|base|meta|map)\b")
_COMMENT_SPLIT = re.compile(r"[a-z]<!--[^>]{0,40}-->[a-z]")
_TAGS = re.compile(r"(?s)<[^>]*>")
_NON_LETTERS = re.compile(r"[\W\d_]+")
_DOMAIN_TEXT = re.compile(r"(?i)\b((?:[a-z0-9-]+\.)+[a-z]{2,})\b")


def _bucket(value: int, top: int = 6) -> int:
    return min(value.bit_length(), top)


def _html_tokens(markup: str, out: list[str]) -> None:
    markup = markup[:200_000]
    low = markup.lower()  # one lower-casing, then case-sensitive searches (faster than (?i))
    out.append("h:html")
    if ("display" in low or "visibility" in low) and _HIDDEN.search(low):
        out.append("h:hidden")
    if ("font" in low) and _TINY.search(low):
        out.append("h:tiny_font")
    if ("fff" in low or "white" in low) and _WHITE.search(low):
        out.append("h:white_text")
    if "<!--" in low and _comment_in_word(low):
        out.append("h:comment_in_word")
    tags: dict[str, int] = {}
    for name in _TAG_NAME.findall(markup):
        tags[name.lower()] = tags.get(name.lower(), 0) + 1
    for name, count in tags.items():
        out.append(f"h:{name}:{_bucket(count)}")
    text = _TAGS.sub(" ", markup)
    letters = _letters(text[:20_000])
    out.append(f"h:letters:{_bucket(letters, 14)}")
    if tags.get("img") and letters < 200:
        out.append("h:image_only")
    out.append(f"h:text_ratio:{min(10 * len(text.strip()) // max(len(markup), 1), 9)}")
    anchors = _ANCHOR.findall(markup[:100_000])
    out.append(f"h:anchors:{_bucket(len(anchors))}")
    for href, label in anchors[:50]:
        label = _TAGS.sub(" ", label)
        target = mime.url_domain(href) if href.lower().startswith(("http", "www")) else None
        if not label.strip():
            out.append("h:anchor_no_text")
            continue
        shown = _DOMAIN_TEXT.search(label)
        if shown and target:
            same = shown.group(1).lower().split(".")[-2:] == target.split(".")[-2:]
            out.append("h:anchor_domain_" + ("same" if same else "other"))
        for word in _WORDS.findall(label.lower())[:3]:
            out.append("h:anchor_word:" + word)


def _comment_in_word(low: str) -> bool:
    """_COMMENT_SPLIT.search(low), tried only where a comment starts."""
    start = low.find("<!--", 1)
    while start >= 0:
        if _COMMENT_SPLIT.match(low, start - 1):
            return True
        start = low.find("<!--", start + 1)
    return False


_ASCII_LETTERS = bytes(range(65, 91)) + bytes(range(97, 123))


def _letters(text: str) -> int:
    """len(_NON_LETTERS.sub("", text)): in ASCII the letters are A-Z a-z, counted in C."""
    if text.isascii():
        data = text.encode("ascii")
        return len(data) - len(data.translate(None, _ASCII_LETTERS))
    return len(_NON_LETTERS.sub("", text))


def _url_pieces(urls: list[str], out: list[str]) -> None:
    seen: set[str] = set()
    for url in urls[:100]:
        if url in seen or not url.lower().startswith(("http", "www")):
            continue
        seen.add(url)
        if len(seen) > 30:
            break
        lowered = url.lower()  # no scheme token: https is the era (all ham is pre-2008)
        rest = re.sub(r"^[a-z][a-z0-9+.-]*://", "", lowered)
        hostport, _, tail = rest.partition("/")
        if "@" in hostport:
            out.append("u:userinfo")
        host = hostport.rsplit("@", 1)[-1]
        if ":" in host:
            out.append("u:port")
            host = host.split(":", 1)[0]
        out.append(f"u:labels:{min(host.count('.') + 1, 6)}")
        if any(c.isdigit() for c in host):
            out.append("u:host_digits")
        if "xn--" in host:
            out.append("u:punycode")
        path, _, query = tail.partition("?")
        path = path.split("#", 1)[0]
        segments = [s for s in path.split("/") if s]
        out.append(f"u:depth:{min(len(segments), 6)}")
        if "%" in tail:
            out.append("u:escaped")
        if segments and "." in segments[-1]:
            out.append("u:ext:" + segments[-1].rsplit(".", 1)[-1][:6])
        for word in _WORDS.findall(path)[:8]:
            out.append("u:path:" + word)
        if query:
            out.append(f"u:query_len:{_bucket(len(query), 10)}")
            for pair in query.split("&")[:8]:
                out.append("u:qkey:" + pair.split("=", 1)[0][:16])


def _attachment_tokens(parts: Sequence[mime.Part], out: list[str]) -> None:
    for part in parts[:20]:
        if not part.filename:
            continue
        name = part.filename.lower()
        pieces = name.split(".")
        if len(pieces) > 2:
            out.append("att:double_ext")
        ext = pieces[-1][:8] if len(pieces) > 1 else ""
        out.append(f"att:type:{part.content_type}:{ext}")
        out.append(f"att:name_len:{_bucket(len(name))}")
        for word in _WORDS.findall(name)[:4]:
            out.append("att:word:" + word)
