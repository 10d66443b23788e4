"""A real DNS server on loopback (dnslib, UDP and TCP) serving test zones.

Tests add records at run time; names not present answer NXDOMAIN, names present
without the asked type answer NODATA (with an SOA giving the negative TTL when
`zone.negative_ttl` is set, as real servers do). A name can be made slow (to test
timeouts) or to answer SERVFAIL; `udp_limit` truncates long UDP answers (TC bit).
"""

from __future__ import annotations

import socket
import threading
import time
from collections import defaultdict

from dnslib import AAAA, CNAME, MX, PTR, QTYPE, RCODE, RR, SOA, TXT, A, DNSLabel, DNSRecord
from dnslib.server import BaseResolver, DNSHandler, DNSLogger, DNSServer

_RDATA = {
    "A": A,
    "AAAA": AAAA,
    "MX": None,  # (preference, host)
    "TXT": None,  # str, bytes, or a list of strings (several character-strings)
    "PTR": PTR,
    "CNAME": CNAME,
}


def _free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port


def _norm(name: str) -> str:
    """The zone key of a name: lower case, trailing dot, odd bytes escaped as dnslib
    prints a query name (so "a b.example" matches a query for it)."""
    return str(DNSLabel(name.rstrip(".") + ".")).lower()


class _ZoneResolver(BaseResolver):
    def __init__(self, zone: TestZone) -> None:
        self.zone = zone

    def resolve(self, request, handler):  # dnslib's interface
        reply = request.reply()
        qname = str(request.q.qname)
        qtype = QTYPE[request.q.qtype]
        name = _norm(qname)
        self.zone.queries.append((name.rstrip("."), qtype))
        delay = self.zone.delays.get(name)
        if delay:
            time.sleep(delay)
        if self.zone.fails(name, qtype):
            reply.header.rcode = RCODE.SERVFAIL
            return reply
        with self.zone.lock:
            by_type = self._lookup(name)
            if by_type is None:
                reply.header.rcode = RCODE.NXDOMAIN
                self._negative(reply)
                return reply
            owner = qname
            for _ in range(8):  # follow CNAMEs inside the zone, as a recursive server would
                answers = list(by_type.get(qtype, ()))
                if answers or "CNAME" not in by_type:
                    break
                target = by_type["CNAME"][0]
                reply.add_answer(
                    RR(owner, QTYPE.CNAME, rdata=self.zone.rdata("CNAME", target), ttl=60)
                )
                owner = target
                by_type = self._lookup(_norm(target))
                if by_type is None:
                    answers = []
                    break
        for rdata in answers:
            reply.add_answer(
                RR(owner, QTYPE.reverse[qtype], rdata=self.zone.rdata(qtype, rdata), ttl=60)
            )
        if not answers:
            self._negative(reply)
        return reply

    def _negative(self, reply) -> None:
        """RFC 2308: the zone's SOA in the authority section, its minimum the negative TTL."""
        ttl = self.zone.negative_ttl
        if ttl is not None:
            soa = SOA("ns.test.", "hostmaster.test.", (1, 3600, 600, 86400, ttl))
            reply.add_auth(RR("test.", QTYPE.SOA, rdata=soa, ttl=ttl))

    def _lookup(self, name: str):
        by_type = self.zone.records.get(name)
        if by_type is None:
            # a wildcard "*.zone." entry covers names below it
            labels = name.split(".")
            for i in range(1, len(labels) - 1):
                wild = "*." + ".".join(labels[i:])
                if wild in self.zone.records:
                    return self.zone.records[wild]
        return by_type


class _Handler(DNSHandler):
    """dnslib's handler, truncating as servers do: the question kept, the TC bit set
    (dnslib's own truncation drops the question, which clients rightly refuse)."""

    limit = 0

    def get_reply(self, data):
        if self.protocol != "udp" or not self.limit:
            return super().get_reply(data)
        request = DNSRecord.parse(data)
        reply = self.server.resolver.resolve(request, self)
        packed = reply.pack()
        if len(packed) <= self.limit:
            return packed
        reply.rr, reply.auth, reply.ar = [], [], []
        reply.header.tc = 1
        return reply.pack()


class TestZone:
    """Records served by a `LoopbackDns`. All methods are thread-safe."""

    __test__ = False  # not a pytest class

    def __init__(self) -> None:
        self.records: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
        self.delays: dict[str, float] = {}
        self.servfail: dict[str, frozenset[str] | None] = {}  # name -> failing types
        self.queries: list[tuple[str, str]] = []
        self.negative_ttl: int | None = None  # None: negative answers without an SOA
        self.lock = threading.Lock()

    def add(self, name: str, rtype: str, value) -> None:
        if rtype not in _RDATA:
            raise ValueError(f"unsupported record type {rtype}")
        with self.lock:
            self.records[_norm(name)][rtype].append(value)

    def clear(self, name: str, rtype: str | None = None) -> None:
        with self.lock:
            if rtype is None:
                self.records.pop(_norm(name), None)
            elif _norm(name) in self.records:
                self.records[_norm(name)].pop(rtype, None)

    def slow(self, name: str, seconds: float) -> None:
        self.delays[_norm(name)] = seconds

    def fail(self, name: str, types: set[str] | frozenset[str] | None = None) -> None:
        """Answer SERVFAIL for `name` (only for `types` when given)."""
        self.servfail[_norm(name)] = frozenset(types) if types is not None else None

    def fails(self, name: str, qtype: str) -> bool:
        if name not in self.servfail:
            return False
        types = self.servfail[name]
        return types is None or qtype in types

    @staticmethod
    def rdata(rtype: str, value):
        if rtype == "TXT":
            if isinstance(value, str | bytes):
                value = [value]
            parts = []
            for chunk in value:
                raw = chunk.encode() if isinstance(chunk, str) else chunk
                # one character-string holds at most 255 bytes: split long ones
                parts.extend(raw[i : i + 255] for i in range(0, len(raw), 255) or [0])
            return TXT(parts or [b""])
        if rtype == "MX":
            preference, host = value
            return MX(host, preference)
        return _RDATA[rtype](value)


class LoopbackDns:
    """Start with `with LoopbackDns() as dns:`; `dns.port` and `dns.zone` for tests."""

    def __init__(self, zone: TestZone | None = None, udp_limit: int = 0) -> None:
        """`udp_limit`: UDP answers longer than this many bytes are truncated (0: never)."""
        self.zone = zone or TestZone()
        handler = type("Handler", (_Handler,), {"limit": udp_limit})
        self.port = _free_port()
        logger = DNSLogger(log="-request,-reply,-truncated,-error,-recv,-send,-data", prefix=False)
        self._resolver = _ZoneResolver(self.zone)
        self._servers = [
            DNSServer(
                self._resolver,
                address="127.0.0.1",
                port=self.port,
                tcp=tcp,
                logger=logger,
                handler=handler,
            )
            for tcp in (False, True)
        ]
        for server in self._servers:
            # a slow answer may come after stop(): nothing to report then
            server.server.handle_error = lambda *args: None

    @property
    def nameserver(self) -> str:
        return f"127.0.0.1:{self.port}"

    def use(self, zone: TestZone) -> None:
        """Serve another zone from now on (one server for many scenarios)."""
        self.zone = zone
        self._resolver.zone = zone

    def start(self) -> LoopbackDns:
        for server in self._servers:
            # a short poll interval: stop() returns in milliseconds, not half a second
            server.thread = threading.Thread(
                target=server.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
            )
            server.thread.start()
        return self

    def stop(self) -> None:
        for server in self._servers:
            # a slow answer still being sent after the socket closed is not an error
            server.server.handle_error = lambda request, client_address: None
            server.stop()
            server.server.server_close()

    def __enter__(self) -> LoopbackDns:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def ask(self, name: str, rtype: str = "A") -> DNSRecord:
        """Query the server directly (for checking the fixture itself)."""
        packet = DNSRecord.question(name, rtype).send("127.0.0.1", self.port, timeout=2)
        return DNSRecord.parse(packet)
