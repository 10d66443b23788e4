"""Tokens from real mail: decoded text (any charset), URLs, structure and header evidence.

The classifier sees a bag of prefixed string tokens, hashed into a fixed-width sparse
vector, so one extractor serves training, evaluation and the gateway alike:

- body and subject words (lower-cased), and for Chinese/Japanese/Korean text, which has no
  spaces, character unigrams and bigrams (as good as a segmenter for spam filtering, and
  ten times faster than one);
- URL domains (`u:`), attachment types (`att:`), MIME structure (`ct:`, `cs:`, `cte:`);
- header evidence when there are headers (`rcv:` Received chain shape, `mid:` Message-ID
  shape, `xm:` X-Mailer, `rt:` From/Reply-To mismatch, `hn:` a few telling header names).

Enron-style mail (a Subject line and a body, nothing else) yields the first group only.
Headers written by other spam filters (X-Spam-*, X-Virus-*...) are never read: in public
corpora they leak the label, and in production they are the sender's claims.
A `fingerprint` of the normalised text groups near-duplicates so training and evaluation
can keep them on one side of the split.
"""

from __future__ import annotations

import email
import email.message
import email.policy
import hashlib
import html
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import chain

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction import FeatureHasher
from sklearn.utils.sparsefuncs_fast import inplace_csr_row_normalize_l2

from gateway.mail import mime
from training import features3, vectors

# Bump when tokens change. A model stores the version it was trained with and is scored
# with exactly those tokens: every version listed in FEATURES_VERSIONS stays extractable.
FEATURES_VERSION = "mw-features-3"
FEATURES_VERSIONS = ("mw-features-1", "mw-features-2", "mw-features-3")
N_FEATURES = 2**20
# mw-features-2: character 4-grams of the words in the first CHAR_HEAD characters of body
# text (Latin script; CJK already has character bigrams), as sklearn's char_wb: each word
# padded with a space either side. They are hashed into a separate block of
# CHAR_FEATURES columns after the N_FEATURES word columns, L2-normalised on their own and
# weighted CHAR_WEIGHT before the row is normalised again: normalised together with the
# words (about 250 distinct 4-grams against 175 word and header features a message) they
# drown the header evidence, and recall at 0.01% fell (docs/classifier.md, third round).
CHAR_PREFIX = "c:"
CHAR_N = 4
CHAR_HEAD = 1000
CHAR_FEATURES = 2**19
CHAR_WEIGHT = 0.45
# mw-features-3: the structural `x.` tokens and the raw byte 4-grams (training.features3),
# each in a block of its own, weighted as the character n-grams are (docs/classifier.md).
EXTRA_PREFIX = features3.EXTRA_PREFIX
EXTRA_FEATURES = 2**18
EXTRA_WEIGHT = 0.5
RAW_WEIGHT = 0.5
MAX_TEXT = 60_000  # characters of body text looked at
MAX_PART_BYTES = 400_000  # bytes of one text part decoded

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
_TOKEN = re.compile(rf"[{_CJK}]+|[^\W_{_CJK}]+(?:['.,$%-][^\W_{_CJK}]+)*")
_CJK_RUN = re.compile(rf"[{_CJK}]")
_DIGIT9 = str.maketrans("0123456789", "9999999999")
_URL_STRIP = re.compile(r"(?i)(?:https?://|www\.)\S+|\S+@\S+")
_NON_LETTERS = re.compile(r"[\W\d_]+")
_RCVD_FROM = re.compile(r"(?is)^\s*from\s+(\S+)(?:\s+\(([^)]*)\))?")
_FOLD = re.compile(r"\r?\n[ \t]")
_SURROGATE = re.compile("[\udc80-\udcff]")
_IP = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}\b")
_ADDR = re.compile(r"[\w.+'=-]+@([\w-]+(?:\.[\w-]+)+)")

# Headers whose presence says something about the sender's software or list membership.
_TELLING_HEADERS = frozenset(
    {
        "in-reply-to",
        "references",
        "list-id",
        "list-unsubscribe",
        "precedence",
        "organization",
        "user-agent",
        "x-mailer",
        "x-priority",
        "x-msmail-priority",
        "x-mimeole",
        "mime-version",
        "date",
        "message-id",
        "reply-to",
        "cc",
        "importance",
        "disposition-notification-to",
        "x-originating-ip",
        "errors-to",
        "return-path",
        "content-type",
        "to",
    }
)
_VERDICT_HEADERS = re.compile(r"(?i)^x-(spam|virus|bogosity|dspam|ham|asf|antivirus|mailscanner)")


@dataclass(frozen=True)
class MessageFeatures:
    tokens: list[str]
    fingerprint: bytes  # equal for near-duplicates (same words once numbers/URLs dropped)
    raw_grams: np.ndarray | None = None  # mw-features-3: byte 4-gram columns (features3)


def parse(raw: bytes) -> email.message.Message:
    """Parse for training: compat32 is several times faster than policy.default."""
    return email.message_from_bytes(raw)


def n_features(version: str = FEATURES_VERSION) -> int:
    """Columns of `vectorize`'s rows for a features version."""
    if version == "mw-features-1":
        return N_FEATURES
    if version == "mw-features-2":
        return N_FEATURES + CHAR_FEATURES
    return N_FEATURES + CHAR_FEATURES + EXTRA_FEATURES + features3.RAW_FEATURES


def extract_raw(
    raw: bytes, fingerprint: bool = True, version: str = FEATURES_VERSION
) -> MessageFeatures:
    return extract(parse(raw), raw=raw, fingerprint=fingerprint, version=version)


def extract(
    msg: email.message.Message,
    parts: Sequence[mime.Part] | None = None,
    raw: bytes | None = None,
    fingerprint: bool = True,
    version: str = FEATURES_VERSION,
) -> MessageFeatures:
    """Tokens and near-duplicate fingerprint of one parsed message (any email policy).

    Scoring needs no fingerprint (it only groups corpus messages): fingerprint=False
    skips it (b"" instead) and saves a sixth of the time. `version` picks the token set
    (a model is scored with the version it was trained on); the fingerprint is the same
    for every version.
    """
    if parts is None:
        parts = list(mime.leaf_parts(msg))
    fallback = _declared_charset(parts)
    headers = _header_values(msg, fallback)
    tokens: list[str] = []

    subject = " ".join(v for k, v in headers if k == "subject")
    _text_tokens(subject, "s:", tokens)

    markups: list[str] = []
    texts, urls = _body(parts, markups)
    body = "\n".join(texts)[:MAX_TEXT]
    _text_tokens(body, "", tokens)
    _style_tokens(body, tokens)
    _url_tokens(urls, tokens)
    _structure_tokens(msg, parts, tokens)
    if any(k != "subject" for k, _ in headers):
        _header_tokens(headers, tokens)
    else:
        tokens.append("hdr:subject_only")
    if version != "mw-features-1":
        _char_tokens(body[:CHAR_HEAD], tokens)
    grams = None
    if version == "mw-features-3":
        tokens.extend(features3.extra_tokens(msg, parts, headers, markups, urls, raw))
        grams = features3.raw_grams(raw if raw is not None else msg.as_bytes())
    joined = "".join(tokens)
    if not joined.isascii() and _SURROGATE.search(joined):  # undecodable bytes: hashable
        tokens = [t.encode("utf-8", "surrogateescape").decode("utf-8", "replace") for t in tokens]
    return MessageFeatures(tokens, _fingerprint(subject, body, raw) if fingerprint else b"", grams)


# -- text ---------------------------------------------------------------------------------


def header_text(value: str, fallback: str | None = None) -> str:
    """A raw header value as text: raw 8-bit bytes decoded, then RFC 2047 words."""
    value = str(value)
    if not value.isascii() and _SURROGATE.search(value):
        data = value.encode("ascii", "surrogateescape")
        value = decode_guess(data, fallback)
    if "\n" in value:
        value = _FOLD.sub(" ", value)
    if "=?" in value:
        value = mime.decode_rfc2047(value)
    return value


# Header values some token reads (the other headers count by name only); Received: the
# first _READ_RECEIVED hops (features3 reads 4, _received_tokens 6, the rest are counted).
_READ_VALUES = frozenset(
    {"subject", "from", "to", "reply-to", "date", "message-id", "content-type"}
    | {"x-mailer", "user-agent", "received"}
)
_READ_RECEIVED = 6


def _header_values(msg: email.message.Message, fallback: str | None) -> list[tuple[str, str]]:
    """(lower-cased name, value) of every header; values that no token reads are left
    raw (decoding them, RFC 2047 words above all, cost a tenth of a message's features)."""
    out = []
    received = 0
    for name, value in msg.raw_items():
        name = name.lower()
        if name in _READ_VALUES and (name != "received" or received < _READ_RECEIVED):
            received += name == "received"
            out.append((name, header_text(value, fallback)))
        else:
            out.append((name, value))
    return out


_WEAK_DECLARATIONS = frozenset({None, "us-ascii", "ascii", "iso-8859-1", "latin-1", "cp1252"})
_WEAK_DECLARATIONS |= {"windows-1252", "x-unknown", "unknown", "default", "charset"}


def decode_guess(data: bytes, declared: str | None) -> str:
    """Decode text whose declared charset may be missing or wrong.

    Chinese mail is often sent as raw GB2312/GBK with no or a Latin declaration; decoding
    it as Latin-1 gives mojibake that shares no tokens with correctly labelled mail.
    A declared CJK or other specific charset is trusted (with mime's fallbacks).
    """
    label = declared.lower().strip().strip('"') if declared else None
    if label not in _WEAK_DECLARATIONS or data[:4096].isascii():
        return mime.decode_text(data, declared)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        text = data.decode("gb18030")
    except UnicodeDecodeError:
        text = None
    if text is not None:
        high = [c for c in text[:4000] if ord(c) > 0x7F]
        if high and sum(1 for c in high if _CJK_RUN.match(c)) >= 0.6 * len(high):
            return text
    return mime.decode_text(data, declared)


def _declared_charset(parts: Sequence[mime.Part]) -> str | None:
    for part in parts:
        if part.charset and part.is_text:
            return part.charset
    return None


def _body(
    parts: Sequence[mime.Part], markups: list[str] | None = None
) -> tuple[list[str], list[str]]:
    """Readable text (plain parts, else HTML) and every URL in any text part; the HTML
    markup itself goes to `markups` when given."""
    plain, html, urls = [], [], []
    for part in parts:
        # a multipart whose boundary never appears reaches us as a leaf: its body is text
        broken_multipart = part.content_type.startswith("multipart/")
        if part.filename or not (part.content_type in _TEXT_TYPES or broken_multipart):
            continue
        text = decode_guess(part.payload[:MAX_PART_BYTES], part.charset)
        if part.content_type == "text/html" or _looks_html(text):
            if markups is not None:
                markups.append(text)
            text, links = html_text(text)
            urls.extend(links)
            html.append(text)
        else:
            plain.append(text)
        urls.extend(mime.extract_urls(text))
    return (plain or html), urls


_TEXT_TYPES = frozenset({"text/plain", "text/html"})
_HTML_DROP = re.compile(r"(?is)<(script|style|head|title)\b.*?</\1\s*>|<!--.*?-->")
# (?i)\b(?:href|src)... spelt out: without IGNORECASE the engine skips ahead to an h or s
# (twice as fast); \u017f is the long s, which IGNORECASE matches as s
_HTML_LINK = re.compile(
    r"""(?=[hHsS\u017f])\b(?:[hH][rR][eE][fF]|[sS\u017f][rR][cC])\s*=\s*["']?([^"'\s>]+)"""
)
_HTML_TAG = re.compile(r"(?s)<[^>]*>")
_HTML_START = re.compile(r"(?i)^\s*<(!doctype|html|head|body|table|div|p|font)\b")


def _looks_html(text: str) -> bool:
    return bool(_HTML_START.match(text[:200]))


def html_text(markup: str) -> tuple[str, list[str]]:
    """Visible text and link targets of HTML, by regular expressions.

    gateway.mail.mime.html_to_text (html.parser) is exact but costs about 8 ms on a typical
    phishing page; tokens need only the words and the links, which this gets in a tenth
    of the time. Hidden-text tricks are words either way.
    """
    markup = _HTML_DROP.sub(" ", markup[: MAX_TEXT * 4])
    links = _HTML_LINK.findall(markup)
    text = html.unescape(_HTML_TAG.sub(" ", markup))
    return text, links


def _text_tokens(text: str, prefix: str, out: list[str]) -> None:
    append = out.append
    for word in _TOKEN.findall(text.lower()):
        size = len(word)
        if 1 < size < 26 and word.isascii() and word.isalpha():  # most words: first
            append(prefix + word)
        elif size < 2:
            if size and word >= "\u3040":  # a lone CJK character
                out.append(prefix + word)
        elif size > 25:
            if word[0] >= "\u3040" and _CJK_RUN.match(word):
                _cjk_tokens(word, prefix, out)
            else:
                out.append(f"{prefix}long:{min(size // 10, 9)}")
        elif word.isascii():
            if word.isalpha() or size < 5:
                out.append(prefix + word)
            elif word.isdigit():
                out.append(f"{prefix}num:{size}")
            else:
                out.append(prefix + word.translate(_DIGIT9))
        elif _CJK_RUN.match(word):
            _cjk_tokens(word, prefix, out)
        else:
            out.append(prefix + word)


def _cjk_tokens(run: str, prefix: str, out: list[str]) -> None:
    """Unigrams and bigrams of a run of CJK characters (no spaces between words)."""
    out.extend([prefix + c for c in run])
    out.extend([prefix + run[i : i + 2] for i in range(len(run) - 1)])


class _WordCache(dict[str, tuple[str, ...]]):
    """word -> its character 4-grams, filled on first use and shared by every message
    and thread (a lookup in C instead of building the grams of each word again). Bounded:
    emptied when full, so memory stays flat; CJK words (whole phrases, rarely met twice,
    and without grams) are not kept."""

    def __init__(self, grams: Callable[[str], tuple[str, ...]], limit: int) -> None:
        super().__init__()
        self.grams = grams
        self.limit = limit

    def __missing__(self, word: str) -> tuple[str, ...]:
        value = self.grams(word)
        if value:
            if len(self) >= self.limit:
                self.clear()
            self[word] = value
        return value


def _char_grams(word: str) -> tuple[str, ...]:
    """Character 4-grams of one word padded with spaces (none for CJK or long words)."""
    if len(word) > _CHAR_MAX_WORD or (not word.isascii() and _CJK_RUN.search(word)):
        return ()
    padded = " " + word + " "
    return tuple(map(CHAR_PREFIX.__add__, map(padded.__getitem__, _GRAM_SLICES[len(padded)])))


def _char_tokens(text: str, out: list[str]) -> None:
    """Character 4-grams of each Latin-script word, padded with spaces (char_wb)."""
    out.extend(chain.from_iterable(map(_CHAR_WORDS.__getitem__, _TOKEN.findall(text.lower()))))


_CHAR_MAX_WORD = 30
# the slices of every 4-gram of a padded word, by its length (map, not a loop per gram)
_GRAM_SLICES = [
    tuple(slice(end - CHAR_N, end) for end in range(CHAR_N, size + 1))
    for size in range(_CHAR_MAX_WORD + 3)
]
_CHAR_WORDS = _WordCache(_char_grams, limit=10_000)  # about 5 MB when full


def _style_tokens(body: str, out: list[str]) -> None:
    head = body[:5000]
    if head.isascii():  # str.isalpha / isupper are A-Z a-z / A-Z there: count in C
        data = head.encode("ascii")
        letters = len(data) - len(data.translate(None, _ASCII_LETTERS))
        upper = len(data) - len(data.translate(None, _ASCII_UPPER))
    else:
        letters = sum(map(str.isalpha, head))
        upper = sum(map(str.isupper, head)) if letters else 0
    if letters:
        out.append(f"sty:upper:{min(10 * upper // letters, 9)}")
    out.append(f"sty:len:{min(len(body).bit_length(), 17)}")
    out.append(f"sty:bang:{min(body.count('!'), 5)}")


_ASCII_UPPER = bytes(range(65, 91))
_ASCII_LETTERS = _ASCII_UPPER + bytes(range(97, 123))


def _url_tokens(urls: list[str], out: list[str]) -> None:
    seen: set[str] = set()
    for url in urls[:200]:
        if not url.lower().startswith(("http", "www")):
            if url.lower().startswith("mailto:"):
                out.append("u:mailto")
            continue
        host = mime.url_domain(url)
        if not host or host in seen:
            continue
        seen.add(host)
        if _IP.fullmatch(host):
            out.append("u:ip")
            continue
        labels = host.split(".")
        out.append("u:" + ".".join(labels[-2:]))
        out.append("u:" + host)
        out.append("u:tld:" + labels[-1])
    out.append(f"u:n:{min(len(seen), 6)}")


def _top_content_type(msg: email.message.Message) -> str:
    """From the raw header: policy.default would build a header object (slow) for this."""
    for name, value in msg.raw_items():
        if name.lower() == "content-type":
            ctype = str(value).split(";", 1)[0].strip().lower()
            return ctype if ctype.count("/") == 1 and " " not in ctype else "bad"
    return "text/plain"


def _structure_tokens(
    msg: email.message.Message, parts: Sequence[mime.Part], out: list[str]
) -> None:
    top = _top_content_type(msg)
    kinds = []
    for part in parts[:20]:
        kinds.append(part.content_type)
        out.append("ct:" + part.content_type)
        if part.charset:
            out.append("cs:" + part.charset.lower().strip('"'))
        out.append("cte:" + part.transfer_encoding[:20])
        if part.filename:
            ext = part.filename.rsplit(".", 1)[-1].lower()[:8] if "." in part.filename else ""
            out.append("att:" + ext)
        for flag in part.flags:
            out.append("flag:" + flag)
    out.append("ct:top:" + top)
    out.append("ct:shape:" + top + "(" + ",".join(kinds[:6]) + ")")
    out.append(f"ct:nparts:{min(len(parts), 8)}")


# -- headers ------------------------------------------------------------------------------


def _header_tokens(headers: list[tuple[str, str]], out: list[str]) -> None:
    first: dict[str, str] = {}
    received = []
    for name, value in headers:
        if _VERDICT_HEADERS.match(name):
            continue
        first.setdefault(name, value)
        if name == "received":
            received.append(value)
        if name in _TELLING_HEADERS:
            out.append("hn:" + name)
    _received_tokens(received, out)
    _message_id_tokens(first.get("message-id"), first.get("from"), out)
    mailer = first.get("x-mailer") or first.get("user-agent")
    if mailer:
        words = _NON_LETTERS.sub(" ", mailer.lower()).split()[:2]
        out.append("xm:" + " ".join(words))
    _address_tokens(first, out)


def _received_tokens(received: list[str], out: list[str]) -> None:
    out.append(f"rcv:n:{min(len(received), 8)}")
    for index, value in enumerate(received[:6]):
        flat = " ".join(value.split())
        match = _RCVD_FROM.match(flat)
        if not match:
            out.append(f"rcv:{index}:nofrom")
            continue
        helo, info = match.group(1).lower(), (match.group(2) or "").lower()
        if _IP.search(helo) or helo.startswith("["):
            out.append(f"rcv:{index}:helo_ip")
        elif "." not in helo:
            out.append(f"rcv:{index}:helo_short")
        if "unknown" in info:
            out.append(f"rcv:{index}:rdns_unknown")
        elif info and not _IP.fullmatch(info.strip("[] ")):
            rdns = info.split()[0].strip("[]")
            if "." in rdns and helo.split(".")[-2:] != rdns.split(".")[-2:]:
                out.append(f"rcv:{index}:helo_ne_rdns")
        if " with " in flat.lower():
            proto = flat.lower().split(" with ", 1)[1].split()[0][:12]
            out.append(f"rcv:with:{proto}")


def _message_id_tokens(mid: str | None, sender: str | None, out: list[str]) -> None:
    if not mid:
        out.append("mid:none")
        return
    mid = mid.strip().strip("<>")
    local, _, domain = mid.rpartition("@")
    if not local:
        out.append("mid:noat")
        return
    shape = features3.shape(local, 24)
    out.append("mid:shape:" + shape)
    out.append(f"mid:len:{min(len(local) // 8, 8)}")
    domain = domain.lower().strip(">. ")
    out.append("mid:dom:" + ".".join(domain.split(".")[-2:]))
    sender_dom = _domain_of(sender or "")
    if sender_dom:
        same = sender_dom.split(".")[-2:] == domain.split(".")[-2:]
        out.append("mid:from_dom_" + ("same" if same else "differs"))


def _domain_of(value: str) -> str | None:
    match = _ADDR.search(value)
    return match.group(1).lower() if match else None


def _address_tokens(first: dict[str, str], out: list[str]) -> None:
    sender = first.get("from", "")
    from_dom = _domain_of(sender)
    if not from_dom:
        out.append("from:noaddr")
    else:
        out.append("from:dom:" + ".".join(from_dom.split(".")[-2:]))
        display = sender.split("<", 1)[0]
        if "@" in display and _domain_of(display) != from_dom:
            out.append("from:display_other_addr")
    reply_to = first.get("reply-to")
    if reply_to is None:
        out.append("rt:none")
    else:
        rt_dom = _domain_of(reply_to)
        same = rt_dom and from_dom and rt_dom.split(".")[-2:] == from_dom.split(".")[-2:]
        out.append("rt:same_domain" if same else "rt:mismatch")
    to = first.get("to")
    if to is None:
        out.append("to:none")
    else:
        out.append(f"to:n:{min(to.count('@'), 5)}")


# -- near duplicates ----------------------------------------------------------------------


def _fingerprint(subject: str, body: str, raw: bytes | None) -> bytes:
    """Same key for copies that differ only in numbers, URLs, spacing or punctuation."""
    text = _NON_LETTERS.sub(" ", _URL_STRIP.sub(" ", (subject + "\n" + body[:8000]).lower()))
    text = " ".join(text.split())
    if len(text) < 40:  # too little text to call two messages the same: exact bytes only
        return hashlib.sha256(b"raw:" + (raw or text.encode())).digest()[:16]
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()[:16]


# -- vectors ------------------------------------------------------------------------------

_HASHER = FeatureHasher(
    n_features=N_FEATURES, input_type="string", alternate_sign=False, dtype=np.float32
)


_CHAR_HASHER = FeatureHasher(
    n_features=CHAR_FEATURES, input_type="string", alternate_sign=False, dtype=np.float32
)
_EXTRA_HASHER = FeatureHasher(
    n_features=EXTRA_FEATURES, input_type="string", alternate_sign=False, dtype=np.float32
)


_LAYOUTS = {
    "mw-features-1": vectors.Layout((N_FEATURES,), (1.0,), (), blocks_normalised=False),
    "mw-features-2": vectors.Layout(
        (N_FEATURES, CHAR_FEATURES),
        (1.0, CHAR_WEIGHT),
        ((CHAR_PREFIX.encode(), vectors.CHARS), (EXTRA_PREFIX.encode(), vectors.DROPPED)),
        blocks_normalised=True,
    ),
    "mw-features-3": vectors.Layout(
        (N_FEATURES, CHAR_FEATURES, EXTRA_FEATURES, features3.RAW_FEATURES),
        (1.0, CHAR_WEIGHT, EXTRA_WEIGHT, RAW_WEIGHT),
        ((CHAR_PREFIX.encode(), vectors.CHARS), (EXTRA_PREFIX.encode(), vectors.EXTRA)),
        blocks_normalised=True,
    ),
}


def vectorize(
    token_lists: Sequence[list[str]],
    version: str = FEATURES_VERSION,
    grams: Sequence[np.ndarray | None] | None = None,
) -> sp.csr_matrix:
    """Token lists -> log-scaled, L2-normalised hashed counts (stateless: no fitting).

    From mw-features-2 on, character n-gram tokens go to their own block of columns
    (normalised on their own, weighted CHAR_WEIGHT); mw-features-1 rows are unchanged.
    mw-features-3 adds two more blocks, each normalised and weighted on its own: the
    `x.` structural tokens and the raw byte 4-grams (`grams`, binary; features3).
    Built by training.vectors in one pass over all blocks.
    """
    return vectors.hashed_rows(token_lists, _LAYOUTS[version], grams)


def vectorize_arrays(
    token_lists: Sequence[list[str]],
    version: str = FEATURES_VERSION,
    grams: Sequence[np.ndarray | None] | None = None,
) -> vectors.Rows:
    """`vectorize`'s rows as arrays, without the scipy matrix (scoring reads only these)."""
    return vectors.row_arrays(token_lists, _LAYOUTS[version], grams)


def token_columns(tokens: Sequence[str], version: str = FEATURES_VERSION) -> dict[int, list[str]]:
    """Column of `vectorize`'s rows -> the tokens hashed to it (to explain a score)."""
    distinct = list(dict.fromkeys(tokens))
    blocks: list[tuple[FeatureHasher, int, list[str]]] = [(_HASHER, 0, [])]
    if version != "mw-features-1":
        blocks.append((_CHAR_HASHER, N_FEATURES, []))
    if version == "mw-features-3":
        blocks.append((_EXTRA_HASHER, N_FEATURES + CHAR_FEATURES, []))
    for token in distinct:
        if len(blocks) > 2 and token.startswith(EXTRA_PREFIX):
            blocks[2][2].append(token)
        elif len(blocks) > 1 and token.startswith(CHAR_PREFIX):
            blocks[1][2].append(token)
        else:
            blocks[0][2].append(token)
    out: dict[int, list[str]] = {}
    for hasher, offset, names in blocks:
        if not names:
            continue
        rows = hasher.transform([[name] for name in names]).tocsr()
        for name, column in zip(names, rows.indices.tolist(), strict=True):
            out.setdefault(offset + column, []).append(name)
    return out


def raw_block_offset() -> int:
    """First column of the raw byte 4-gram block in mw-features-3 rows."""
    return N_FEATURES + CHAR_FEATURES + EXTRA_FEATURES


def word_feature_counts(matrix: sp.csr_matrix) -> np.ndarray:
    """Distinct word-block features (columns < N_FEATURES) per row of `vectorize`."""
    if matrix.shape[1] <= N_FEATURES:
        return np.diff(matrix.indptr)
    in_words = np.concatenate([[0], np.cumsum(matrix.indices < N_FEATURES)])
    return in_words[matrix.indptr[1:]] - in_words[matrix.indptr[:-1]]


def normalize_rows(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """In-place L2 row normalisation without sklearn's per-call parameter validation
    (which costs ~1 ms, as much as the rest of scoring one message)."""
    if matrix.data.dtype not in (np.float32, np.float64):
        matrix.data = matrix.data.astype(np.float64)
    inplace_csr_row_normalize_l2(matrix)
    return matrix
