"""Replacing MIME parts in the raw bytes: numbering as leaf_parts, everything else untouched."""

from __future__ import annotations

import email
import email.policy
import random

import pytest

from gateway.mail.edit import MimeEditError, leaf_spans, replace_parts
from gateway.mail.mime import MAX_DEPTH, leaf_parts
from gateway.model import PartNotice
from tests.support.virusmail import EICAR, SHAPES, Payload, Shapes


def parts_of(raw: bytes):
    return list(leaf_parts(email.message_from_bytes(raw, policy=email.policy.default)))


def ids_of(raw: bytes) -> list[str]:
    out: list[str] = []
    for part in parts_of(raw):
        if not out or out[-1] != part.part_id:
            out.append(part.part_id)
    return out


def shaped(shape: str) -> bytes:
    maker = getattr(Shapes(Payload("notes.txt", b"meeting at ten\r\n")), shape)
    return maker(EICAR, "invoice.doc", "t1").encode()


HANDMADE = {
    "no_boundary_param": (
        b"Content-Type: multipart/mixed\r\n\r\n--x\r\nContent-Type: text/plain\r\n\r\n"
        b"hi\r\n--x--\r\n"
    ),
    "boundary_never_used": (
        b'Content-Type: multipart/mixed; boundary="zz"\r\n\r\nnot mime at all\r\n'
    ),
    "close_before_open": (
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b--\r\n--b\r\n\r\nlate\r\n'
    ),
    "missing_close": (
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n\r\none\r\n--b\r\n'
        b"Content-Type: application/octet-stream\r\n\r\ntwo"
    ),
    "repeated_boundary_lines": (
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\npre\r\n--b\r\n--b\r\n\r\none\r\n'
        b"--b\r\n\r\ntwo\r\n--b--\r\nepilogue\r\n"
    ),
    "bare_lf": (
        b'Content-Type: multipart/mixed; boundary="b"\n\n--b\nContent-Type: text/plain\n\none\n'
        b"--b\nContent-Type: application/x-foo\n\ntwo\n--b--\n"
    ),
    "no_header_separator": (
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nthis line is body\r\n'
        b"--b\r\nContent-Type: text/html\r\n\r\n<p>x</p>\r\n--b--\r\n"
    ),
    "digest": (
        b'Content-Type: multipart/digest; boundary="d"\r\n\r\n--d\r\n\r\nSubject: one\r\n\r\n'
        b"first\r\n--d\r\n\r\nSubject: two\r\nContent-Type: text/plain\r\n\r\nsecond\r\n--d--\r\n"
    ),
    "delivery_status": (
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="r"\r\n\r\n'
        b"--r\r\n\r\nIt failed.\r\n--r\r\nContent-Type: message/delivery-status\r\n\r\n"
        b"Reporting-MTA: dns; mx\r\n\r\nFinal-Recipient: rfc822; a@b\r\nAction: failed\r\n"
        b"--r\r\nContent-Type: message/rfc822\r\n\r\nSubject: orig\r\n\r\nbody\r\n--r--\r\n"
    ),
    "outer_boundary_inside_inner": (
        b'Content-Type: multipart/mixed; boundary="o"\r\n\r\n--o\r\n'
        b'Content-Type: multipart/alternative; boundary="i"\r\n\r\n--i\r\n\r\na\r\n'
        b"--o\r\n\r\nb\r\n--o--\r\n"
    ),
    "not_mime": b"Subject: plain\r\n\r\njust text\r\n",
    "headers_only": b"Subject: nothing else\r\n",
}


@pytest.mark.parametrize("name", sorted(HANDMADE) + [f"shape:{s}" for s in SHAPES])
def test_numbering_agrees_with_leaf_parts(name):
    raw = shaped(name[6:]) if name.startswith("shape:") else HANDMADE[name]
    assert [s.part_id for s in leaf_spans(raw)] == ids_of(raw)


@pytest.mark.parametrize("name", sorted(HANDMADE) + [f"shape:{s}" for s in SHAPES])
def test_each_part_replaced_alone_leaves_the_others_byte_identical(name):
    raw = shaped(name[6:]) if name.startswith("shape:") else HANDMADE[name]
    spans = leaf_spans(raw)
    for target in spans:
        out = replace_parts(raw, [PartNotice(target.part_id, "Virus removed: Test.Virus")])
        after = {p.part_id: p for p in parts_of(out)}
        assert after[target.part_id].content_type == "text/plain"
        assert "Virus removed: Test.Virus" in after[target.part_id].text()
        # every other leaf: the same bytes as received, at a shifted offset
        new_spans = {s.part_id: s for s in leaf_spans(out)}
        for other in spans:
            if other.part_id == target.part_id:
                continue
            mine = new_spans[other.part_id]
            assert out[mine.start : mine.end] == raw[other.start : other.end]
        # and nothing before the replaced part moved
        assert out[: target.start] == raw[: target.start]
        assert out.endswith(raw[target.end :])


def test_infected_attachment_replaced_and_everything_else_identical():
    raw = shaped("base64")
    before = parts_of(raw)
    assert [p.filename for p in before] == [None, "invoice.doc", "notes.txt"]
    out = replace_parts(raw, [PartNotice("2", "The virus EICAR was removed from invoice.doc")])
    after = parts_of(out)
    assert after[1].content_type == "text/plain"
    assert after[1].text().strip() == "The virus EICAR was removed from invoice.doc"
    assert EICAR not in out
    assert after[0].payload == before[0].payload
    assert after[2].payload == before[2].payload
    # the message headers are untouched
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert out.startswith(head)


def test_part_inside_forwarded_message_keeps_the_embedded_headers():
    raw = shaped("forwarded")
    ids = [p.part_id for p in parts_of(raw)]
    assert ids == ["1", "2.1", "2.2", "3"]
    out = replace_parts(raw, [PartNotice("2.2", "removed")])
    assert b"Subject: Original t1" in out
    assert EICAR not in out
    assert [p.part_id for p in parts_of(out)] == ids


def test_single_part_message_keeps_its_other_headers():
    raw = shaped("single_part")
    out = replace_parts(raw, [PartNotice("1", "removed")])
    msg = email.message_from_bytes(out, policy=email.policy.default)
    assert msg["Subject"] == "File t1"
    assert msg["From"] == "Sender <sender@example.org>"
    assert msg.get_content_type() == "text/plain"
    assert msg.get_content().strip() == "removed"
    assert len(msg.get_all("Content-Type")) == 1


def test_several_parts_at_once():
    raw = shaped("alternative")
    out = replace_parts(raw, [PartNotice("1.2", "html gone"), PartNotice("3", "virus gone")])
    texts = {p.part_id: p.text().strip() for p in parts_of(out)}
    assert texts["1.2"] == "html gone"
    assert texts["3"] == "virus gone"
    assert texts["1.1"] == "Plain text version."


def test_notice_that_looks_like_a_boundary_cannot_break_the_structure():
    raw = shaped("base64")
    evil = "removed\n--=_mixed_t1--\nContent-Type: text/html\n\n<script>x</script>"
    out = replace_parts(raw, [PartNotice("2", evil)])
    assert ids_of(out) == ids_of(raw)
    assert parts_of(out)[1].text().splitlines() == evil.splitlines()


def test_non_ascii_notice():
    out = replace_parts(shaped("base64"), [PartNotice("2", "病毒已删除: EICAR")])
    assert parts_of(out)[1].text().strip() == "病毒已删除: EICAR"


def test_unknown_part_is_refused():
    with pytest.raises(MimeEditError, match="no such MIME part: 9"):
        replace_parts(shaped("base64"), [PartNotice("9", "x")])


def test_no_notices_returns_the_same_bytes():
    raw = shaped("zip")
    assert replace_parts(raw, []) is raw


def test_nesting_deeper_than_followed_is_one_replaceable_leaf():
    depth = MAX_DEPTH + 60
    body = b"Content-Type: application/octet-stream\r\n\r\n" + EICAR + b"\r\n"
    for level in range(depth):
        b = f"n{level}".encode()
        body = (
            b'Content-Type: multipart/mixed; boundary="' + b + b'"\r\n\r\n--' + b + b"\r\n"
            + body + b"\r\n--" + b + b"--\r\n"
        )  # fmt: skip
    raw = b"Subject: deep\r\n" + body
    spans = leaf_spans(raw)
    assert [s.part_id for s in spans] == ids_of(raw)
    assert spans[0].too_deep
    out = replace_parts(raw, [PartNotice(spans[0].part_id, "too deep, removed")])
    assert EICAR not in out
    assert out.startswith(raw[: spans[0].start])


def test_random_garbage_never_raises_anything_but_mime_edit_error():
    rng = random.Random(7)
    alphabet = [
        b"--b",
        b"--b--",
        b"\r\n",
        b"\n",
        b"Content-Type: multipart/mixed; boundary=b",
        b"x",
    ]
    alphabet += [b"Content-Type: message/rfc822", b": ", b" ", b"\r", b"Content-Type: text/plain"]
    for _ in range(300):
        raw = b"".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40)))
        assert [s.part_id for s in leaf_spans(raw)] == ids_of(raw), raw
        target = rng.choice(leaf_spans(raw)).part_id
        try:
            out = replace_parts(raw, [PartNotice(target, "gone")])
        except MimeEditError:
            continue
        assert "gone" in {p.text().strip() for p in parts_of(out)}
