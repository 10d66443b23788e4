"""The MIME skeleton read before parsing: limits and ambiguity (pure)."""

from __future__ import annotations

from gateway.mail.structure import scan_structure
from gateway.model import parse_message


def nested(levels: int) -> bytes:
    head = b"From: a@sender.test\r\nSubject: deep\r\nMIME-Version: 1.0\r\n"
    out = b""
    for i in range(levels):
        out += b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i)
    out += b"Content-Type: text/plain\r\n\r\nhi\r\n"
    return head + out + b"".join(b"--b%d--\r\n" % i for i in reversed(range(levels)))


def test_depth_and_parts_are_counted_without_parsing():
    s = scan_structure(nested(3))
    assert (s.depth, s.entities, s.exceeded, s.ambiguities) == (3, 4, None, ())


def test_nesting_past_the_limit_is_reported_before_the_parser_would_recurse():
    s = scan_structure(nested(1000), max_depth=50)
    assert s.exceeded == "MIME nested deeper than 50"
    assert scan_structure(nested(50), max_depth=50).exceeded is None


def test_too_many_parts():
    many = b"Content-Type: multipart/mixed; boundary=x\r\n\r\n"
    many += b"--x\r\nContent-Type: text/plain\r\n\r\nhi\r\n" * 101 + b"--x--\r\n"
    assert scan_structure(many, max_entities=100).exceeded == "more than 100 MIME parts"
    assert scan_structure(many, max_entities=102).exceeded is None


def test_embedded_messages_count_as_levels_and_parts_are_numbered_like_imap():
    raw = (
        b'Content-Type: multipart/mixed; boundary="a"\r\n\r\n--a\r\n'
        b"Content-Type: message/rfc822\r\n\r\nSubject: inner\r\n"
        b"Content-Type: multipart/alternative; boundary=c\r\n\r\n--c\r\n"
        b"Content-Type: text/plain; charset=a; charset=b\r\n\r\nx\r\n--c--\r\n"
        b"--a\r\nContent-Type: text/plain\r\n\r\ny\r\n--a--\r\n"
    )
    s = scan_structure(raw)
    assert s.depth == 3
    assert s.ambiguities == ("part 1.1: 2 charset parameters",)


def test_duplicate_structural_headers_and_parameters_are_ambiguous():
    raw = (
        b'Content-Type: multipart/mixed; boundary="a"; boundary="b"\r\n\r\n'
        b"--a\r\nContent-Type: text/plain\r\nContent-Type: application/zip\r\n"
        b"Content-Transfer-Encoding: base64\r\nContent-Transfer-Encoding: 7bit\r\n\r\nzz\r\n"
        b"--a--\r\n"
    )
    assert scan_structure(raw).ambiguities == (
        "message: 2 boundary parameters",
        "part 1: 2 Content-Type fields",
        "part 1: 2 Content-Transfer-Encoding fields",
    )


def test_rfc2231_sections_are_one_parameter_but_plain_and_extended_are_two():
    ok = b'Content-Type: text/plain; name*0="a"; name*1="b.txt"\r\n\r\nx\r\n'
    assert scan_structure(ok).ambiguities == ()
    both = b"Content-Type: text/plain; name=\"a.txt\"; name*=utf-8''b.exe\r\n\r\nx\r\n"
    assert scan_structure(both).ambiguities == ("message: 2 name parameters",)


def test_what_the_scan_counts_matches_the_parser():
    raw = nested(5)
    parsed = parse_message(raw)
    assert sum(1 for _ in parsed.walk()) == scan_structure(raw).entities
