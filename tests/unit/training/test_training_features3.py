"""mw-features-3: raw byte 4-grams and structural tokens."""

from __future__ import annotations

import numpy as np

from training import features3
from training.features import extract_raw

HTML_SPAM = (
    b"From: Bank <alert@bank.example>\r\nSubject: Verify\r\n"
    b"Date: Mon, 3 Mar 2025 10:00:00 +0000\r\n"
    b"To: victim@site.example\r\nReceived: from x (y [192.0.2.1]) by mx with ESMTP id 1\r\n"
    b"DKIM-Signature: v=1; d=bank.example\r\n"
    b'Content-Type: text/html; charset="utf-8"\r\n\r\n'
    b'<html><body><div style="display:none">lorem ipsum</div>'
    b'<a href="http://evil.example/login.php?user=1&t=2">www.bank.example</a>'
    b'<img src="http://evil.example/a.png"><font size="1">tiny</font></body></html>\r\n'
)


def test_raw_view_keeps_content_headers_and_drops_site_and_era_headers():
    view = features3.raw_view(b"From MAILER-DAEMON Mon Mar  3 2025\n" + HTML_SPAM)
    assert view.startswith(b"From: Bank")
    assert b"Subject: Verify" in view and b"Content-Type: text/html" in view
    for dropped in (b"Received", b"DKIM", b"To:", b"Date:", b"MAILER-DAEMON"):
        assert dropped not in view
    assert b"\r\n" not in view
    assert b"2025" not in features3.raw_view(HTML_SPAM + b"Copyright 2025\r\n")


def test_raw_view_of_headerless_mail_is_the_text():
    text = b"hello there\n\nsecond paragraph"
    assert features3.raw_view(text) == b"\n\n" + text


def test_raw_grams_are_sorted_distinct_columns_and_line_endings_do_not_matter():
    grams = features3.raw_grams(HTML_SPAM)
    assert grams.size > 50
    assert np.all(np.diff(grams) > 0)
    assert grams.max() < features3.RAW_FEATURES
    assert np.array_equal(grams, features3.raw_grams(HTML_SPAM.replace(b"\r\n", b"\n")))
    assert features3.raw_grams(b"a").size == 0  # the view "\n\na": 3 bytes


def test_structural_tokens_name_what_a_reader_would_check():
    feats = extract_raw(HTML_SPAM, version="mw-features-3")
    tokens = set(feats.tokens)
    assert {"x.h:hidden", "x.h:tiny_font", "x.h:anchor_domain_other"} <= tokens
    assert {"x.u:ext:php", "x.u:qkey:user", "x.u:qkey:t", "x.u:path:login"} <= tokens
    assert "x.mc:no_message_id" in tokens and "x.mc:no_date" not in tokens
    assert "x.rcv:0:with:esmtp" in tokens
    assert feats.raw_grams is not None and feats.raw_grams.size > 50


def test_attachment_names_and_double_extensions():
    raw = (
        b"From: a@b.example\r\nSubject: invoice\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="XX"\r\n\r\n--XX\r\n'
        b"Content-Type: text/plain\r\n\r\nsee attached\r\n--XX\r\n"
        b'Content-Type: application/octet-stream; name="invoice.pdf.exe"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\nTVqQAAMAAAAEAAAA\r\n--XX--\r\n"
    )
    tokens = set(extract_raw(raw, version="mw-features-3").tokens)
    assert {"x.att:double_ext", "x.att:word:invoice", "x.ct:param:boundary"} <= tokens
    assert "x.att:type:application/octet-stream:exe" in tokens


def test_older_versions_have_no_structural_tokens_or_grams():
    feats = extract_raw(HTML_SPAM, version="mw-features-2")
    assert not any(t.startswith("x.") for t in feats.tokens)
    assert feats.raw_grams is None
