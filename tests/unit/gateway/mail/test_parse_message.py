"""gateway.model.parse_message: the lean path makes the same Message as the parser."""

from __future__ import annotations

import email
import email.policy

import pytest

from gateway.model import parse_message

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
}


@pytest.mark.parametrize("raw", CASES.values(), ids=CASES.keys())
def test_same_message_as_the_full_parser(raw):
    full = email.message_from_bytes(raw, policy=email.policy.compat32)
    lean = parse_message(raw)
    assert lean.items() == full.items()
    assert lean.get_unixfrom() == full.get_unixfrom()
    assert [type(d) for d in lean.defects] == [type(d) for d in full.defects]
    assert lean.is_multipart() == full.is_multipart()
    assert lean.as_bytes() == full.as_bytes()
    if not full.is_multipart():
        assert lean.get_payload() == full.get_payload()
        assert lean.get_payload(decode=True) == full.get_payload(decode=True)
