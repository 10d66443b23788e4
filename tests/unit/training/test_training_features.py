"""Feature extraction on tricky real-world encodings and structures."""

from __future__ import annotations

import base64
import email
import email.policy

import numpy as np

from training.features import (
    CHAR_FEATURES,
    CHAR_WEIGHT,
    N_FEATURES,
    decode_guess,
    extract,
    extract_raw,
    vectorize,
    word_feature_counts,
)

CN_SUBJECT = "发票代开"  # "invoices issued on your behalf": classic Chinese spam
CN_BODY = "本公司长期为企业代开各类发票，欢迎来电咨询。"


def _gb_word(text: str, charset: str = "gb2312") -> str:
    return f"=?{charset}?B?{base64.b64encode(text.encode('gb2312')).decode()}?="


def test_gb2312_encoded_word_subject_gives_chinese_bigrams():
    raw = (
        f"From: a@b.example\r\nSubject: {_gb_word(CN_SUBJECT)}\r\n"
        'Content-Type: text/plain; charset="gb2312"\r\n\r\n'
    ).encode() + CN_BODY.encode("gb2312")
    tokens = extract_raw(raw).tokens
    assert {"s:发", "s:发票", "s:票代", "s:代开"} <= set(tokens)
    assert {"发票", "代开", "咨询"} <= set(tokens)


def test_gbk_bytes_declared_gb2312_decode_as_gb18030():
    # 「瑢」 exists in GBK but not in GB2312: strict gb2312 decoding would fail
    text = "瑢" + CN_BODY
    raw = b"Subject: x\nContent-Type: text/plain; charset=gb2312\n\n" + text.encode("gbk")
    assert "瑢" in extract_raw(raw).tokens


def test_raw_gb2312_without_or_with_a_wrong_declaration_is_still_chinese():
    body = CN_BODY.encode("gb2312")
    for header in (b"", b"Content-Type: text/plain; charset=us-ascii\n"):
        raw = b"Subject: hello\n" + header + b"\n" + body
        assert "发票" in extract_raw(raw).tokens, header
    # raw 8-bit GB2312 in the Subject header itself (no encoded-word)
    raw = b"Subject: " + CN_SUBJECT.encode("gb2312") + b"\n\n" + body
    assert "s:代开" in extract_raw(raw).tokens


def test_decode_guess_keeps_latin_text_latin():
    assert decode_guess("café crème".encode("cp1252"), "iso-8859-1") == "café crème"
    assert decode_guess("naïve".encode(), None) == "naïve"


def test_big5_and_an_unknown_charset_label():
    raw = (
        b"Subject: =?big5?B?" + base64.b64encode("優惠".encode("big5")) + b"?=\n"
        b"Content-Type: text/plain; charset=big5\n\n" + "免費優惠".encode("big5")
    )
    tokens = set(extract_raw(raw).tokens)
    assert {"s:優惠", "免費", "優惠"} <= tokens
    raw = b"Subject: hi\nContent-Type: text/plain; charset=x-no-such\n\nplain words here\n"
    assert {"plain", "words"} <= set(extract_raw(raw).tokens)


def test_multipart_without_its_boundary_is_read_as_text():
    raw = (
        b'Subject: s\nContent-Type: multipart/alternative; boundary="nope"\n\n'
        b"the body is plain text after all\n"
    )
    assert {"body", "plain", "text"} <= set(extract_raw(raw).tokens)


def test_html_text_links_and_attachment_types():
    raw = (
        b"Subject: offer\nMIME-Version: 1.0\n"
        b'Content-Type: multipart/mixed; boundary="b"\n\n'
        b"--b\nContent-Type: text/html\n\n"
        b"<html><style>.x{color:red}</style><p>Claim your&nbsp;prize</p>"
        b'<a href="https://login.bank-secure.example.com/x">here</a></html>\n'
        b'--b\nContent-Type: application/zip; name="invoice.zip"\n'
        b"Content-Transfer-Encoding: base64\n\nUEsDBA==\n--b--\n"
    )
    tokens = set(extract_raw(raw).tokens)
    assert {"claim", "prize", "u:example.com", "u:login.bank-secure.example.com"} <= tokens
    assert "color" not in tokens  # style sheets are not text
    assert {"att:zip", "ct:text/html", "ct:top:multipart/mixed"} <= tokens


def test_header_evidence_and_verdict_headers_ignored():
    raw = (
        b"Received: from [10.0.0.1] (unknown [203.0.113.9]) by mx.example with SMTP\n"
        b"From: PayPal <service@paypal.example>\nReply-To: x@collector.example\n"
        b"Message-ID: <ABCD1234.5678@mailer.example>\nX-Mailer: Bulk Sender 5.1\n"
        b"X-Spam-Status: No, score=-2.0\nSubject: verify\n\nverify your account\n"
    )
    tokens = set(extract_raw(raw).tokens)
    assert {"rcv:0:helo_ip", "rcv:0:rdns_unknown", "rt:mismatch", "xm:bulk sender"} <= tokens
    assert {"mid:from_dom_differs", "mid:shape:a9.9"} <= tokens
    assert not any("spam" in t for t in tokens if t.startswith("hn:"))
    assert "hdr:subject_only" not in tokens


def test_enron_style_subject_and_body_only():
    raw = b"Subject: re : gas nominations\nplease see the attached nominations for june .\n"
    tokens = extract_raw(raw).tokens
    assert "hdr:subject_only" in tokens
    assert {"s:gas", "s:nominations", "attached", "june"} <= set(tokens)


def test_near_duplicates_share_a_fingerprint_and_others_do_not():
    base = b"Subject: Win %d dollars\n\nVisit http://%s.example/ now, offer %d ends soon! " * 1
    text = b" Lots of words so the message is long enough to be compared fairly."
    a = extract_raw(base % (100, b"aa", 1) + text).fingerprint
    b = extract_raw(base % (999, b"bb", 7) + text).fingerprint
    c = extract_raw(
        base % (100, b"aa", 1) + b" An entirely different text about meetings."
    ).fingerprint
    assert a == b != c
    short1 = extract_raw(b"Subject: hi\n\nok\n").fingerprint
    short2 = extract_raw(b"Subject: hi\n\nok \n").fingerprint
    assert short1 != short2  # too little text: only exact copies are duplicates


def test_same_tokens_whichever_email_policy_parsed_the_message():
    raw = (
        f"From: =?utf-8?q?J=C3=BCrgen?= <j@x.example>\nSubject: {_gb_word(CN_SUBJECT)}\n"
        "Message-ID: <1@x.example>\nContent-Type: text/plain; charset=utf-8\n\nhallo welt\n"
    ).encode()
    compat = extract(email.message_from_bytes(raw)).tokens
    modern = extract(email.message_from_bytes(raw, policy=email.policy.default)).tokens
    assert compat == modern


def test_vectors_are_normalised_rows():
    X = vectorize([["a", "b", "b"], ["c"]])
    assert X.shape[0] == 2
    norms = (X.multiply(X)).sum(axis=1).A.ravel()
    assert abs(norms[0] - 1) < 1e-6 and abs(norms[1] - 1) < 1e-6


def test_character_4grams_of_the_body_head_from_features_2_on():
    raw = b"Subject: hello\n\nV1AGRA v-i-a-g-r-a cheap \xe4\xbd\xa0\xe5\xa5\xbd\n"
    old = extract_raw(raw, version="mw-features-1").tokens
    new = extract_raw(raw, version="mw-features-2").tokens
    assert new[: len(old)] == old  # the old tokens unchanged, n-grams appended
    grams = new[len(old) :]
    assert grams[:4] == ["c: v1a", "c:v1ag", "c:1agr", "c:agra"]
    assert "c:chea" in grams and not any("\u4f60" in g for g in grams)  # CJK: bigrams
    assert not any(t.startswith("c:") for t in old)
    long_body = b"Subject: x\n\n" + b"word " * 2000
    assert (
        len(extract_raw(long_body).tokens)
        - len(extract_raw(long_body, version="mw-features-1").tokens)
        == 200 * 3
    )  # 1,000 characters: 200 words of 3 grams each


def test_character_ngrams_get_their_own_weighted_block():
    tokens = [["a", "b", "c:wxyz", "c:xyz "], ["c"]]
    old = vectorize([[t for t in row if not t.startswith("c:")] for row in tokens], "mw-features-1")
    new = vectorize(tokens, "mw-features-2")
    assert old.shape[1] == N_FEATURES and new.shape[1] == N_FEATURES + CHAR_FEATURES
    assert list(word_feature_counts(new)) == [2, 1]
    norms = new.multiply(new).sum(axis=1).A.ravel()
    assert np.allclose(norms, 1)
    chars = new[0, N_FEATURES:].toarray().ravel()
    words = new[0, :N_FEATURES].toarray().ravel()
    assert np.isclose(np.linalg.norm(chars) / np.linalg.norm(words), CHAR_WEIGHT)
