"""gateway.model.parse_message: the lean paths make the same Message as the parser, on
hand-built odd cases and on a sample of every corpus (as received and as normalised)."""

from __future__ import annotations

import email
import email.policy

import pytest

from gateway.mail.received import normalise
from gateway.model import parse_message
from gateway.paths import corpora_dir
from tests.support.corpus_sample import corpus_sample

CASES = {
    "plain": b"From: a@x.test\r\nSubject: hi\r\n\r\nline 1\r\n.line 2\r\n",
    "folded": b"Subject: a\r\n  folded\r\nTo: b@x.test\r\n\r\nbody\r\n",
    "empty body": b"Subject: x\r\n\r\n",
    "no separator": b"Subject: x\r\nnot a header line\r\n\r\nbody\r\n",
    "no headers": b"\r\nbody only\r\n\r\nmore\r\n",
    "8-bit": "Subject: caf\u00e9\r\n\r\nna\u00efve \u4e2d\u6587\r\n".encode(),
    "unixfrom": b"From sender@x.test Sun Nov 22 10:00:00 2026\r\nSubject: x\r\n\r\nb\r\n",
    "multipart": (
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
        b"Content-Type: text/plain\r\n\r\none\r\n--b--\r\n"
    ),
    "multipart declared late": (
        b"Subject: x\r\nMIME-Version: 1.0\r\ncontent-type:multipart/alternative;\r\n"
        b' boundary="q"\r\n\r\n--q\r\nContent-Type: text/html\r\n\r\n<p>x</p>\r\n--q--\r\n'
    ),
    "multipart folded declaration": (
        b'Content-Type:\r\n multipart/mixed; boundary="b"\r\n\r\n--b\r\n\r\none\r\n--b--\r\n'
    ),
    "text declared, multipart in the body": (
        b"Content-Type: text/plain\r\n\r\nContent-Type: multipart/mixed\r\n"
    ),
    "multipart without boundary": b"Content-Type: multipart/mixed\r\n\r\nbody\r\n",
    "message/rfc822": b"Content-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\nx\r\n",
    "bad content-type": b"Content-Type: nonsense\r\n\r\nbody\r\n",
    "base64": b"Content-Transfer-Encoding: base64\r\n\r\naGVsbG8=\r\n",
    "encoded words": (
        b"Subject: =?gb2312?B?1tDOxA==?= and =?utf-8?Q?caf=C3=A9?=\r\n"
        b"From: =?iso-8859-1?q?J=F6rg?= <j@x.test>\r\n\r\nx\r\n"
    ),
    "bad charset": (
        b"Subject: =?x-unknown?B?AAAA?=\r\nContent-Type: text/plain; charset=nope\r\n\r\n\xff\r\n"
    ),
    "blank values and continuations": (
        b"X-Empty:\r\nX-Blank:   \r\n\tgo on\r\nX-Tab:\t\tv \r\n \r\nX-Sp: a  \r\n\r\nb\r\n"
    ),
    "name with odd characters": b"X-A.b_c!#$%&'*+/=?^`{|}~: v\r\n\r\nb\r\n",
    "space before colon": b"Subject : x\r\nFrom: a@x.test\r\n\r\nb\r\n",
    "empty name": b": x\r\nFrom: a@x.test\r\n\r\nb\r\n",
    "first line a continuation": b" x\r\nFrom: a@x.test\r\n\r\nb\r\n",
    "From line inside": b"Subject: x\r\nFrom a@x.test Mon\r\nTo: b@x.test\r\n\r\nb\r\n",
    "bare LF": b"Subject: x\nTo: b@x.test\n\nbody\n",
    "bare CR in a value": b"Subject: x\ry\r\nTo: b@x.test\r\n\r\nbody\r\n",
    "8-bit name": "X-Caf\u00e9: v\r\n\r\nb\r\n".encode(),
    "no body separator at all": b"Subject: x\r\nTo: b@x.test\r\n",
    "only headers and the empty line": b"Subject: x\r\n\r\n",
    "empty": b"",
    "mbox From line": b"From a@x.test  Mon Dec  7 10:00:00 2026\r\nSubject: x\r\n\r\nb\r\n",
    "mbox From line, bare CR": b"From a@x.test\rMon\r\nSubject: x\r\n\r\nb\r\n",
    "mbox From line, bare LF": b"From a@x.test\nSubject: y\r\nSubject: x\r\n\r\nb\r\n",
    "two mbox From lines": b"From a@x.test\r\nFrom b@x.test\r\nSubject: x\r\n\r\nb\r\n",
    "only an mbox From line": b"From a@x.test\r\n\r\nb\r\n",
    "mbox From line second": b"X-Tag: 1\r\nFrom a@x.test  Mon\r\nSubject: x\r\n\r\nb\r\n",
    "mbox From line last": b"X-Tag: 1\r\nSubject: x\r\nFrom a@x.test\r\n\r\nb\r\n",
    "mbox From line, then a continuation": b"X: 1\r\nFrom a@x.test\r\n c\r\nS: x\r\n\r\nb\r\n",
    "two misplaced From lines": b"X: 1\r\nFrom a@x.test\r\nY: 2\r\nFrom b@x\r\nZ: 3\r\n\r\nb\r\n",
    "From line and a missing name": b"X: 1\r\nFrom a@x.test\r\n: v\r\nZ: 3\r\n\r\nb\r\n",
}


@pytest.mark.parametrize("raw", CASES.values(), ids=CASES.keys())
def test_same_message_as_the_full_parser(raw):
    same_message(raw)


def test_corpus_messages_make_the_same_message():
    raws = corpus_sample()
    if not raws:
        pytest.skip(f"no corpora in {corpora_dir()} (set MAILWARDEN_CORPORA to check them)")
    for raw in raws:
        same_message(normalise(raw)[0])  # as the gateway reads it
        same_message(b"X-Tag: 1\r\n" + normalise(raw)[0])  # as bench/chain.py sends it
        if b"\r\n\r\n" in raw:  # as received (the lean paths need a CRLF separator)
            same_message(raw)


def same_message(raw: bytes) -> None:
    full = email.message_from_bytes(raw, policy=email.policy.compat32)
    lean = parse_message(raw)
    same_tree(lean, full)
    assert flattened(lean) == flattened(full)
    if not full.is_multipart():
        assert lean.get_payload(decode=True) == full.get_payload(decode=True)


def same_tree(lean, full) -> None:
    assert lean.items() == full.items()
    assert lean.get_unixfrom() == full.get_unixfrom()
    assert [(type(d), d.args) for d in lean.defects] == [(type(d), d.args) for d in full.defects]
    assert lean.get_default_type() == full.get_default_type()
    assert (lean.preamble, lean.epilogue) == (full.preamble, full.epilogue)
    assert lean.is_multipart() == full.is_multipart()
    if full.is_multipart():
        assert len(lean.get_payload()) == len(full.get_payload())
        for a, b in zip(lean.get_payload(), full.get_payload(), strict=True):
            same_tree(a, b)
    else:
        assert lean.get_payload() == full.get_payload()


def flattened(msg) -> bytes | str:
    try:
        return msg.as_bytes()
    except Exception as exc:  # noqa: BLE001 - the generator fails on some real mail
        return type(exc).__name__


def test_context_headers_are_decoded_once_and_as_header_values_reads_them():
    from datetime import UTC, datetime

    from gateway.mail.mime import header_values
    from gateway.model import Envelope, MessageContext

    raw = CASES["encoded words"].replace(b"\r\n\r\n", b"\r\nSubject: two\r\n\r\n", 1)
    ctx = MessageContext("q", Envelope("", (), "192.0.2.1"), raw, datetime.now(UTC))
    for name in ("Subject", "subject", "SUBJECT", "From", "Date", "X-None"):
        assert ctx.header(name) == header_values(parse_message(raw), name)
    first = ctx.header("Subject")
    first.append("changed by a caller")
    assert ctx.header("subject") == header_values(parse_message(raw), "Subject")
    assert len(ctx.header("Subject")) == 2
