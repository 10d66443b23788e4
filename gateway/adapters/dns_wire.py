"""DNS messages on the wire (RFC 1035), only what the gateway asks and reads.

dnspython's general message objects cost the event loop about ten times what the
few record types we read need (names, enums and rdata classes built for every
record): a query here is a bytes template, and an answer is read straight into
small records with the attributes the callers used from dnspython's (`address`,
`strings`, `preference` and `exchange`, `target`). Anything unexpected in an
answer raises `WireError`, which the client treats as no answer from that server.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import dns.name

TYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "MX": 15, "TXT": 16, "AAAA": 28}
TYPES["SPF"] = 99
CNAME, SOA = 5, 6
NOERROR, SERVFAIL, NXDOMAIN = 0, 2, 3
EDNS_PAYLOAD = 1232  # the size DNS flag day 2020 recommends: no IP fragments
_OPT = b"\x00" + struct.pack("!HHIH", 41, EDNS_PAYLOAD, 0, 0)
_HEADER = struct.Struct("!HHHHHH")
_RR = struct.Struct("!HHIH")


class WireError(Exception):
    """Not a well-formed answer to our question."""


class Host(str):
    """A host name in an answer, with dnspython's `to_text` for the callers."""

    __slots__ = ()

    def to_text(self, omit_final_dot: bool = False) -> str:
        return str(self) if omit_final_dot else str(self) + "."


@dataclass(frozen=True, slots=True)
class Address:
    address: str


@dataclass(frozen=True, slots=True)
class Text:
    strings: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class Exchange:
    preference: int
    exchange: Host


@dataclass(frozen=True, slots=True)
class Pointer:
    target: Host


def encode_name(name: str) -> bytes:
    """The wire form of a name; dnspython's errors (LabelTooLong, EmptyLabel, ...) for
    names the DNS cannot hold, and dnspython itself for anything beyond plain ASCII."""
    text = name.rstrip(".") if name not in (".", "") else ""
    if not text.isascii() or "\\" in text:
        wire = dns.name.from_text(name).to_wire()
        assert wire is not None  # without a file to write to, it returns the bytes
        return wire
    out = bytearray()
    for label in text.split(".") if text else ():
        raw = label.encode("ascii")
        if not raw:
            raise dns.name.EmptyLabel
        if len(raw) > 63:
            raise dns.name.LabelTooLong
        out.append(len(raw))
        out += raw
    out.append(0)
    if len(out) > 255:
        raise dns.name.NameTooLong
    return bytes(out)


def encode_query(qid: int, qname: bytes, rdtype: int) -> bytes:
    """A recursive query (RD) with an EDNS0 OPT record."""
    return _HEADER.pack(qid, 0x0100, 1, 0, 0, 1) + qname + struct.pack("!HH", rdtype, 1) + _OPT


def _read_name(wire: bytes, pos: int, lower: bool = True) -> tuple[str, int]:
    """The name at pos (compression followed), in lower case unless told, and the
    position after it."""
    labels: list[str] = []
    end = -1
    jumps = 0
    while True:
        length = wire[pos]
        if length & 0xC0 == 0xC0:
            if end < 0:
                end = pos + 2
            pos = ((length & 0x3F) << 8) | wire[pos + 1]
            jumps += 1
            if jumps > 64:
                raise WireError("compression loop")
            continue
        if length & 0xC0:
            raise WireError("unknown label type")
        pos += 1
        if length == 0:
            break
        label = wire[pos : pos + length]
        if len(label) != length:
            raise WireError("short label")
        text = label.decode("latin-1")
        labels.append(text.lower() if lower else text)
        pos += length
    return ".".join(labels), (end if end >= 0 else pos)


@dataclass(frozen=True, slots=True)
class Reply:
    """What an answer says, before it becomes a cache entry."""

    rcode: int
    truncated: bool
    records: tuple[Any, ...]  # of the asked type, at the end of any CNAME chain
    ttl: int  # least TTL of the chain (positive) or the negative TTL (SOA), else -1


def decode(wire: bytes, qid: int, qname: bytes, rdtype: int) -> Reply:
    """Read an answer to (qid, qname, rdtype); WireError if it is not one."""
    try:
        return _decode(wire, qid, qname, rdtype)
    except (IndexError, struct.error, UnicodeError) as exc:
        raise WireError(f"malformed answer: {exc}") from None


def _wire_to_text(qname: bytes) -> str:
    labels, pos = [], 0
    while qname[pos]:
        labels.append(qname[pos + 1 : pos + 1 + qname[pos]].decode("latin-1").lower())
        pos += 1 + qname[pos]
    return ".".join(labels)


def _decode(wire: bytes, qid: int, qname: bytes, rdtype: int) -> Reply:
    rid, flags, qdcount, ancount, nscount, _arcount = _HEADER.unpack_from(wire)
    if rid != qid or not flags & 0x8000 or (flags >> 11) & 0xF:
        raise WireError("not an answer to our query")
    rcode = flags & 0xF
    truncated = bool(flags & 0x0200)
    asked = _wire_to_text(qname)
    pos = 12
    if qdcount != 1:
        if qdcount == 0 and (truncated or rcode not in (NOERROR, NXDOMAIN)):
            return Reply(rcode, truncated, (), -1)  # some servers drop it from these
        raise WireError("question count")
    name, pos = _read_name(wire, pos)
    qtype, qclass = struct.unpack_from("!HH", wire, pos)
    pos += 4
    if name != asked or qtype != rdtype or qclass != 1:
        raise WireError("an answer to another question")
    if truncated:
        return Reply(rcode, True, (), -1)
    owners: dict[str, list[tuple[int, int, int, int]]] = {}  # name -> (type, ttl, start, end)
    for _ in range(ancount):
        owner, pos = _read_name(wire, pos)
        rtype, rclass, ttl, rdlength = _RR.unpack_from(wire, pos)
        pos += 10
        if pos + rdlength > len(wire):
            raise WireError("short record")
        if rclass == 1:
            owners.setdefault(owner, []).append((rtype, ttl, pos, pos + rdlength))
        pos += rdlength
    least = 0x7FFFFFFF
    records: list[Any] = []
    current = asked
    for _ in range(16):  # follow a CNAME chain inside the answer
        found = owners.get(current, ())
        matching = [r for r in found if r[0] == rdtype]
        if matching:
            for _rtype, ttl, start, end in matching:
                least = min(least, ttl)
                records.append(_rdata(wire, rdtype, start, end))
            break
        alias = [r for r in found if r[0] == CNAME]
        if not alias or rdtype == CNAME:
            break
        least = min(least, alias[0][1])
        current, _ = _read_name(wire, alias[0][2])
    if records:
        return Reply(rcode, False, tuple(records), least)
    # negative: the SOA of the authority section gives the TTL (RFC 2308)
    for _ in range(nscount):
        _owner, pos = _read_name(wire, pos)
        rtype, _rclass, ttl, rdlength = _RR.unpack_from(wire, pos)
        pos += 10
        if rtype == SOA:
            _mname, at = _read_name(wire, pos)
            _rname, at = _read_name(wire, at)
            minimum = struct.unpack_from("!IIIII", wire, at)[4]
            return Reply(rcode, False, (), min(ttl, minimum, least))
        pos += rdlength
    return Reply(rcode, False, (), -1 if least == 0x7FFFFFFF else least)


def _rdata(wire: bytes, rdtype: int, start: int, end: int) -> Any:
    if rdtype == 1:
        if end - start != 4:
            raise WireError("A record of the wrong size")
        return Address(".".join(str(b) for b in wire[start:end]))
    if rdtype == 28:
        if end - start != 16:
            raise WireError("AAAA record of the wrong size")
        import ipaddress

        return Address(str(ipaddress.IPv6Address(wire[start:end])))
    if rdtype in (16, 99):
        strings, pos = [], start
        while pos < end:
            size = wire[pos]
            if pos + 1 + size > end:
                raise WireError("TXT string runs past its record")
            strings.append(bytes(wire[pos + 1 : pos + 1 + size]))
            pos += 1 + size
        return Text(tuple(strings))
    if rdtype == 15:
        (preference,) = struct.unpack_from("!H", wire, start)
        host, _ = _read_name(wire, start + 2, lower=False)
        return Exchange(preference, Host(host))
    if rdtype in (5, 12, 2):
        host, _ = _read_name(wire, start, lower=False)
        return Pointer(Host(host))
    raise WireError(f"record type {rdtype} is not read here")
