"""The hand-written DNS codec against dnspython's, and against hostile bytes.

Answers are built with dnspython (the library the codec replaced on the hot path), so
the two readings of the same wire must agree; any bytes at all must give either a
reply or `WireError`, never another exception (an answer is attacker-controlled
input: whoever can send a UDP packet to the gateway can send one)."""

from __future__ import annotations

import contextlib

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.adapters import dns_wire

NAME = "mail.example.test"


def _answer(qtype: str, records: list[tuple[str, str, str, int]], *, rcode: int = 0,
            soa_ttl: int | None = None, qid: int = 4242) -> bytes:  # fmt: skip
    query = dns.message.make_query(NAME, qtype, use_edns=True)
    query.id = qid
    response = dns.message.make_response(query)
    response.set_rcode(rcode)
    for owner, rtype, text, ttl in records:
        response.answer.append(dns.rrset.from_text(owner, ttl, "IN", rtype, text))
    if soa_ttl is not None:
        response.authority.append(
            dns.rrset.from_text(
                "example.test.",
                soa_ttl,
                "IN",
                "SOA",
                "ns.example.test. host.example.test. 1 3600 600 86400 60",
            )
        )
    return response.to_wire()


def _decode(wire: bytes, qtype: str, qid: int = 4242) -> dns_wire.Reply:
    return dns_wire.decode(wire, qid, dns_wire.encode_name(NAME), dns_wire.TYPES[qtype])


@pytest.mark.parametrize(
    ("qtype", "text", "expected"),
    [
        ("A", "192.0.2.7", ("address", "192.0.2.7")),
        ("AAAA", "2001:db8::7", ("address", "2001:db8::7")),
        ("TXT", '"v=spf1 " "-all"', ("strings", (b"v=spf1 ", b"-all"))),
        ("MX", "10 mx1.example.test.", ("exchange", "mx1.example.test")),
        ("PTR", "host.example.test.", ("target", "host.example.test")),
    ],
)
def test_records_read_as_dnspython_writes_them(qtype, text, expected):
    reply = _decode(_answer(qtype, [(NAME + ".", qtype, text, 300)]), qtype)
    assert reply.rcode == dns_wire.NOERROR and reply.ttl == 300 and not reply.truncated
    (record,) = reply.records
    attribute, value = expected
    assert getattr(record, attribute) == value


def test_a_cname_chain_is_followed_and_the_least_ttl_kept():
    wire = _answer("A", [(NAME + ".", "CNAME", "alias.example.test.", 120),
                         ("alias.example.test.", "A", "192.0.2.9", 600)])  # fmt: skip
    reply = _decode(wire, "A")
    assert [r.address for r in reply.records] == ["192.0.2.9"] and reply.ttl == 120


def test_records_of_another_owner_are_not_taken_for_the_answer():
    wire = _answer("A", [("other.example.test.", "A", "192.0.2.66", 300)])
    assert _decode(wire, "A").records == ()


def test_a_negative_answer_carries_the_soa_negative_ttl():
    reply = _decode(_answer("TXT", [], rcode=dns.rcode.NXDOMAIN, soa_ttl=900), "TXT")
    assert reply.rcode == dns_wire.NXDOMAIN and reply.records == () and reply.ttl == 60


def test_an_answer_to_another_id_or_question_is_refused():
    wire = _answer("A", [(NAME + ".", "A", "192.0.2.7", 300)])
    with pytest.raises(dns_wire.WireError):
        _decode(wire, "A", qid=4243)
    with pytest.raises(dns_wire.WireError):
        _decode(wire, "TXT")  # asked TXT, answered A


def test_query_is_the_wire_dnspython_reads():
    wire = dns_wire.encode_query(77, dns_wire.encode_name("Mail.Example.test."), 16)
    parsed = dns.message.from_wire(wire)
    assert parsed.id == 77 and parsed.flags & dns.flags.RD
    (question,) = parsed.question
    assert question.name == dns.name.from_text("mail.example.test.")
    assert question.rdtype == dns.rdatatype.TXT
    assert parsed.edns == 0 and parsed.payload == dns_wire.EDNS_PAYLOAD


def test_names_the_dns_cannot_hold_are_refused_before_asking():
    with pytest.raises(dns.name.LabelTooLong):
        dns_wire.encode_name("a" * 64 + ".example.test")
    with pytest.raises(dns.name.EmptyLabel):
        dns_wire.encode_name("a..example.test")


def test_a_compression_loop_is_an_error_not_a_hang():
    """A name pointing at itself: the reader gives up after 64 jumps."""
    wire = bytearray(_answer("A", []))
    header = bytearray(wire[:12])
    header[7] = 1  # one answer record
    question_end = 12 + len(dns_wire.encode_name(NAME)) + 4
    loop = len(wire[:question_end]).to_bytes(2, "big")
    record = (
        bytes([0xC0 | loop[0], loop[1]])
        + b"\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\x01\x02\x03\x04"
    )
    hostile = bytes(header) + bytes(wire[12:question_end]) + record
    with pytest.raises(dns_wire.WireError, match="compression loop"):
        _decode(hostile, "A")


VALID = [
    _answer("A", [(NAME + ".", "A", "192.0.2.7", 300)]),
    _answer("MX", [(NAME + ".", "MX", "10 mx.example.test.", 300)]),
    _answer("TXT", [(NAME + ".", "TXT", '"a" "b"', 300)]),
    _answer("TXT", [], rcode=dns.rcode.NXDOMAIN, soa_ttl=900),
]


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(VALID), st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)),
                                        max_size=8), st.integers(0, 400))  # fmt: skip
def test_damaged_answers_give_a_reply_or_wire_error(valid, flips, cut):
    wire = bytearray(valid)
    for position, value in flips:
        if position < len(wire):
            wire[position] = value
    wire = wire[: max(cut, 0)] if cut < len(wire) else wire
    qtype = dns.message.from_wire(valid).question[0].rdtype
    with contextlib.suppress(dns_wire.WireError):
        dns_wire.decode(bytes(wire), 4242, dns_wire.encode_name(NAME), int(qtype))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_any_bytes_give_a_reply_or_wire_error(data):
    qid = int.from_bytes(data[:2].ljust(2, b"\0"), "big")
    with contextlib.suppress(dns_wire.WireError):
        dns_wire.decode(data, qid, dns_wire.encode_name(NAME), 1)
