"""gateway.mail.mime keeps raw 8-bit bodies byte for byte, whatever charset is declared."""

from __future__ import annotations

import email
import email.policy

import pytest

from gateway.mail.mime import leaf_parts

GBK = "瑢本公司代开发票".encode("gbk")  # 瑢 is GBK, not GB2312


@pytest.mark.parametrize("policy", [email.policy.compat32, email.policy.default])
@pytest.mark.parametrize(
    "header",
    [
        b"",
        b"Content-Type: text/plain; charset=us-ascii\n",
        b"Content-Type: text/plain; charset=gb2312\nContent-Transfer-Encoding: 8bit\n",
    ],
)
def test_undeclared_or_misdeclared_8bit_body_is_kept_exactly(policy, header):
    msg = email.message_from_bytes(b"Subject: x\n" + header + b"\n" + GBK + b"\n", policy=policy)
    (part,) = leaf_parts(msg)
    assert part.payload == GBK + b"\n"  # before the fix: U+FFFD or lossy GB2312 decoding
    if b"gb2312" in header:  # decoded as GB18030, a superset of GBK
        assert "瑢" in part.text()


def test_quoted_printable_with_stray_8bit_bytes():
    raw = b"Content-Type: text/plain; charset=gbk\nContent-Transfer-Encoding: quoted-printable\n\n"
    msg = email.message_from_bytes(raw + b"a=3Db " + GBK + b"\n")
    (part,) = leaf_parts(msg)
    assert part.payload == b"a=b " + GBK + b"\n"
