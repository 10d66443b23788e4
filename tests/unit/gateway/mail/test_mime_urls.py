"""gateway.mail.mime.message_urls: every web URL a reader could follow, text and HTML links."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.message import EmailMessage

import pytest

from gateway.mail.mime import decode_text, extract_urls, leaf_parts, message_urls
from gateway.mail.received import normalise
from gateway.model import Envelope, MessageContext
from gateway.paths import corpora_dir
from tests.support.corpus_sample import corpus_sample


def parts_of(msg: EmailMessage):
    return list(leaf_parts(msg))


def test_urls_from_plain_text_html_text_and_html_links_in_order_without_repeats():
    msg = EmailMessage()
    msg.set_content("Go to https://a.test/x, or www.b.test. Again https://a.test/x")
    msg.add_alternative(
        '<p>Visible http://c.test/ <a href="https://hidden.test/p?q=1">click</a>'
        '<img src="//img.test/t.gif"> <a href="mailto:x@y.test">m</a>'
        '<a href="#top">top</a> <a href="cid:part1">c</a></p>',
        subtype="html",
    )
    assert message_urls(parts_of(msg)) == [
        "https://a.test/x",
        "www.b.test",
        "http://c.test/",
        "https://hidden.test/p?q=1",
        "http://img.test/t.gif",
    ]


def test_attachments_are_not_read_for_urls_and_the_limit_holds():
    msg = EmailMessage()
    msg.set_content(" ".join(f"http://d{i}.test/" for i in range(10)))
    msg.add_attachment(
        b"http://in-attachment.test/",
        maintype="application",
        subtype="octet-stream",
        filename="x.bin",
    )
    urls = message_urls(parts_of(msg), limit=3)
    assert urls == ["http://d0.test/", "http://d1.test/", "http://d2.test/"]
    assert all("in-attachment" not in u for u in message_urls(parts_of(msg)))


def test_an_html_part_is_parsed_once_for_its_text_links_and_urls(monkeypatch):
    """The blocklist's URLs, the rules' body and URLs share one reading of each part."""
    from gateway.mail import mime
    from gateway.model import Envelope, MessageContext

    feeds = []
    real_feed = mime._HtmlText.feed

    def counting_feed(self, data):
        feeds.append(len(data))
        return real_feed(self, data)

    monkeypatch.setattr(mime._HtmlText, "feed", counting_feed)
    raw = (
        b"From: a@x.test\r\nContent-Type: text/html\r\n\r\n"
        b'<p>Read http://c.test/ now <a href="https://hidden.test/">here</a></p>\r\n'
    )
    envelope = Envelope("a@x.test", ("b@y.test",), "192.0.2.1")
    ctx = MessageContext("q1", envelope, raw, datetime.now(UTC))
    assert ctx.urls == ("http://c.test/", "https://hidden.test/")
    assert "Read http://c.test/ now here" in ctx.body_text
    assert ctx.parts[0].links() == ["https://hidden.test/"]
    assert mime.message_urls(ctx.parts) == ["http://c.test/", "https://hidden.test/"]
    assert len(feeds) == 1


# the pattern extract_urls used before it was spelt out for speed
_CASELESS_URL = re.compile(r"""(?i)\b(?:https?://|www\.)[^\s<>"'()\[\]{}]+""")
_URL_TEXTS = [
    "see HTTP://A.test/x, Https://b.test/y. hTTpſ://long-s.test/ WwW.c.test! xwww.d.test",
    "http://e.test/(paren) <http://f.test/> 'www.g.test' [https://h.test/]{x} \u212attp://k.test",
    "\u0130www.i.test _http://j.test/ 9www.k.test caf\u00e9http://l.test/ http:// www.",
]


def test_urls_found_as_by_the_caseless_pattern():
    for text in _URL_TEXTS:
        old = [m.group(0).rstrip(".,;:!?") for m in _CASELESS_URL.finditer(text)]
        assert extract_urls(text) == old


def test_no_letter_but_the_long_s_folds_to_the_url_patterns_letters():
    caseless = re.compile(r"(?i)[htpsw]")
    folds = [
        chr(c)
        for c in range(0x110000)
        if not 0xD800 <= c < 0xE000 and caseless.fullmatch(chr(c)) and chr(c) not in "htpswHTPSW"
    ]
    assert folds == ["\u017f"]


def test_urls_of_real_mail_found_as_by_the_caseless_pattern():
    raws = corpus_sample()
    if not raws:
        pytest.skip(f"no corpora in {corpora_dir()} (set MAILWARDEN_CORPORA to check them)")
    envelope = Envelope("a@x.test", ("b@y.test",), "192.0.2.1")
    for raw in raws:
        ctx = MessageContext("q", envelope, normalise(raw)[0], datetime(2026, 1, 1, tzinfo=UTC))
        for part in ctx.parts:
            text = part.text() if part.is_text else decode_text(part.payload[:65536], "latin-1")
            old = [m.group(0).rstrip(".,;:!?") for m in _CASELESS_URL.finditer(text)]
            assert extract_urls(text) == old
