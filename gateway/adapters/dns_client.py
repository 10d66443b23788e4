"""Asking the configured DNS servers: one UDP socket per event loop, TCP when truncated.

dnspython's async resolver opens and closes a UDP endpoint for every query.
`UdpClient` keeps one socket per event loop (per address family) and matches each
reply to its query by the random 16-bit id, the server's address and the question;
anything else that arrives (a late reply to a query given up, a forgery with a
wrong id or question, garbage) is dropped and the query keeps waiting. Identical
questions asked while one is in flight share it.

Source port: a socket kept for many queries has one source port, so an off-path
forger has only the id (16 bits) to guess, not id and port (about 31 bits) as
with a socket per query. The socket is therefore replaced after `ROTATE_AFTER`
queries, and the servers are meant to be a recursive resolver on loopback or on
the local network (the `[dns] nameservers` the documentation asks for), where
nobody off-path can race its answers.

Retries are as they were with dnspython: each query has one deadline (its
timeout); the servers are asked in order, the next one after an error answer
(SERVFAIL, REFUSED, unparsable) or a time-out while time is left. A truncated
UDP answer (TC bit) is asked again over TCP from the same server.

`blocking_query` is the same for worker threads (pyspf, dkimpy): a connected
socket per query there, but those threads mostly find their answers in the cache
the event loop has filled. Queries and answers are read and written by
`dns_wire`, not dnspython's message classes (which cost about as much as all the
rest of a query).
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import struct
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from gateway.adapters import dns_wire
from gateway.adapters.dns_cache import MAX_NEGATIVE_TTL, MAX_TTL, Answer, Entry, Negative
from gateway.adapters.dns_wire import NOERROR, NXDOMAIN, Reply, WireError

ROTATE_AFTER = 2_000  # queries per UDP socket before a new one (a new source port)
NEGATIVE_TTL_WITHOUT_SOA = 300  # dnspython's choice, kept: a negative answer without an SOA


class ServerFailed(Exception):
    """This server gave no usable answer (error rcode, bad reply, refused TCP): ask the next."""


class QueryTimeout(Exception):
    """No answer before the deadline."""


@dataclass(frozen=True, slots=True)
class Question:
    """One query on the wire: a random id (`secrets`), the name's wire form, the type."""

    qid: int
    qname: bytes
    rdtype: int

    @classmethod
    def make(cls, name: str, rdtype: str) -> Question:
        code = dns_wire.TYPES.get(rdtype)
        if code is None:
            raise ValueError(f"record type {rdtype} is not asked by the gateway")
        return cls(secrets.randbits(16), dns_wire.encode_name(name), code)

    def again(self, taken: Any) -> Question:
        """The same question with another random id not in `taken`."""
        qid = self.qid
        while qid in taken:
            qid = secrets.randbits(16)
        return Question(qid, self.qname, self.rdtype)

    def wire(self) -> bytes:
        return dns_wire.encode_query(self.qid, self.qname, self.rdtype)

    def read(self, data: bytes) -> Reply:
        return dns_wire.decode(data, self.qid, self.qname, self.rdtype)


def interpret(reply: Reply) -> Entry:
    """The cache entry an answer means; ServerFailed when it is not an answer to keep."""
    if reply.rcode not in (NOERROR, NXDOMAIN):
        raise ServerFailed(f"rcode {reply.rcode}")
    now = time.monotonic()
    if reply.records:
        if reply.rcode == NXDOMAIN:
            raise ServerFailed("records in an NXDOMAIN answer")
        return Answer(reply.records, now + min(max(reply.ttl, 0), MAX_TTL))
    ttl = NEGATIVE_TTL_WITHOUT_SOA if reply.ttl < 0 else reply.ttl
    return Negative(reply.rcode == NXDOMAIN, now + min(ttl, MAX_NEGATIVE_TTL))


@dataclass
class _Socket:
    """One UDP socket and the queries waiting for a reply on it."""

    transport: asyncio.DatagramTransport
    waiting: dict[int, tuple[Question, tuple[str, int], asyncio.Future]] = field(
        default_factory=dict
    )
    sent: int = 0
    retired: bool = False

    def close_if_idle(self) -> None:
        if self.retired and not self.waiting:
            self.transport.close()


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.owner: _Socket | None = None

    def datagram_received(self, data: bytes, addr: Any) -> None:
        owner = self.owner
        if owner is None or len(data) < 12:
            return
        (qid,) = struct.unpack_from("!H", data)
        pending = owner.waiting.get(qid)
        if pending is None:
            return  # no query with this id (late, or forged): ignore
        query, server, future = pending
        if (addr[0], addr[1]) != server or future.done():
            return
        try:
            reply = query.read(data)
        except WireError:
            return  # same id, but garbage or another question: not ours, keep waiting
        future.set_result(reply)

    def error_received(self, exc: Exception) -> None:
        pass  # an ICMP error for one query: that query times out, the others go on

    def connection_lost(self, exc: Exception | None) -> None:
        owner = self.owner
        if owner is None:
            return
        for _query, _server, future in owner.waiting.values():
            if not future.done():
                future.set_exception(ServerFailed("socket closed"))


class UdpClient:
    """Queries from one event loop to `servers` ([(address, port)])."""

    def __init__(self, servers: list[tuple[str, int]]) -> None:
        self.servers = servers
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sockets: dict[int, _Socket] = {}  # by address family
        self._opening: dict[int, asyncio.Future] = {}
        self._inflight: dict[tuple[str, str], asyncio.Task] = {}

    async def query(self, name: str, rdtype: str, timeout: float) -> Entry:
        """The answer of the first server that gives one; QueryTimeout or ServerFailed."""
        self._bind_loop()
        key = (name.lower(), rdtype)
        task = self._inflight.get(key)
        if task is None:
            # a task of its own: a caller that gives up (cancelled) does not fail the
            # others waiting for the same answer
            task = asyncio.get_running_loop().create_task(
                self._ask_servers(name, rdtype, time.monotonic() + timeout)
            )
            self._inflight[key] = task
            task.add_done_callback(partial(self._finished, key))
        try:
            return await asyncio.wait_for(asyncio.shield(task), timeout)
        except TimeoutError:
            raise QueryTimeout(f"{name}/{rdtype}") from None

    def _finished(self, key: tuple[str, str], task: asyncio.Future) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if not task.cancelled():
            task.exception()  # retrieved: a failure nobody waits for any more is no warning

    async def _ask_servers(self, name: str, rdtype: str, deadline: float) -> Entry:
        failure: Exception = QueryTimeout(f"{name}/{rdtype}")
        question = Question.make(name, rdtype)
        for server in self.servers:
            if time.monotonic() >= deadline:
                break
            try:
                reply = await self._udp(question, server, deadline)
                if reply.truncated:
                    reply = await _tcp(question, server, deadline)
                return interpret(reply)
            except (QueryTimeout, ServerFailed) as exc:
                failure = exc
        raise failure

    def _bind_loop(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new loop (tests, `scan`): the old sockets died with it
            self._loop = loop
            self._sockets = {}
            self._opening = {}
            self._inflight = {}

    async def _socket(self, family: int) -> _Socket:
        sock = self._sockets.get(family)
        if sock is not None and not sock.retired and not sock.transport.is_closing():
            return sock
        opening = self._opening.get(family)
        if opening is None:
            loop = asyncio.get_running_loop()
            opening = loop.create_future()
            self._opening[family] = opening
            try:
                protocol = _Protocol()
                local = ("::", 0) if family == socket.AF_INET6 else ("0.0.0.0", 0)
                transport, _ = await loop.create_datagram_endpoint(
                    lambda: protocol, local_addr=local, family=family
                )
                sock = _Socket(transport)
                protocol.owner = sock
                self._sockets[family] = sock
                opening.set_result(sock)
            except OSError as exc:
                opening.set_exception(exc)
                opening.exception()
                raise ServerFailed(f"cannot open a UDP socket: {exc}") from None
            finally:
                self._opening.pop(family, None)
            return sock
        return await opening

    async def _udp(self, question: Question, server: tuple[str, int], deadline: float) -> Reply:
        family = socket.AF_INET6 if ":" in server[0] else socket.AF_INET
        sock = await self._socket(family)
        question = question.again(sock.waiting)
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        sock.waiting[question.qid] = (question, server, future)
        sock.sent += 1
        if sock.sent >= ROTATE_AFTER:
            sock.retired = True  # the next query opens a new socket (a new source port)
        try:
            sock.transport.sendto(question.wire(), server)
            return await asyncio.wait_for(future, max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            raise QueryTimeout(f"no answer from {server[0]}") from None
        except OSError as exc:
            raise ServerFailed(f"{server[0]}: {exc}") from None
        finally:
            sock.waiting.pop(question.qid, None)
            sock.close_if_idle()


async def _tcp(question: Question, server: tuple[str, int], deadline: float) -> Reply:
    """The same question over TCP (the UDP answer was truncated)."""

    async def ask() -> Reply:
        reader, writer = await asyncio.open_connection(server[0], server[1])
        try:
            wire = question.wire()
            writer.write(struct.pack("!H", len(wire)) + wire)
            (size,) = struct.unpack("!H", await reader.readexactly(2))
            return question.read(await reader.readexactly(size))
        finally:
            writer.close()

    try:
        return await asyncio.wait_for(ask(), max(0.0, deadline - time.monotonic()))
    except TimeoutError:
        raise QueryTimeout(f"no TCP answer from {server[0]}") from None
    except (OSError, EOFError, asyncio.IncompleteReadError, WireError) as exc:
        raise ServerFailed(f"{server[0]} over TCP: {exc}") from None


def blocking_query(servers: list[tuple[str, int]], name: str, rdtype: str, timeout: float) -> Entry:
    """`UdpClient.query` for a worker thread (no event loop): a socket per query."""
    deadline = time.monotonic() + timeout
    failure: Exception = QueryTimeout(f"{name}/{rdtype}")
    question = Question.make(name, rdtype)
    for server in servers:
        if deadline - time.monotonic() <= 0:
            break
        try:
            reply = _blocking_udp(question, server, deadline)
            if reply.truncated:
                reply = _blocking_tcp(question, server, deadline)
            return interpret(reply)
        except (QueryTimeout, ServerFailed) as exc:
            failure = exc
    raise failure


def _blocking_udp(question: Question, server: tuple[str, int], deadline: float) -> Reply:
    family = socket.AF_INET6 if ":" in server[0] else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(server)  # the kernel drops datagrams from anyone else
            sock.send(question.wire())
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise QueryTimeout(f"no answer from {server[0]}")
                sock.settimeout(left)
                data = sock.recv(65535)
                try:
                    return question.read(data)
                except WireError:
                    continue  # another id or question, or garbage: keep waiting
        except TimeoutError:
            raise QueryTimeout(f"no answer from {server[0]}") from None
        except OSError as exc:
            raise ServerFailed(f"{server[0]}: {exc}") from None


def _blocking_tcp(question: Question, server: tuple[str, int], deadline: float) -> Reply:
    try:
        left = max(0.001, deadline - time.monotonic())
        with socket.create_connection(server, timeout=left) as sock:
            wire = question.wire()
            sock.sendall(struct.pack("!H", len(wire)) + wire)
            data = b""
            while len(data) < 2 or len(data) < 2 + struct.unpack_from("!H", data)[0]:
                sock.settimeout(max(0.001, deadline - time.monotonic()))
                chunk = sock.recv(65535)
                if not chunk:
                    raise ServerFailed(f"{server[0]} closed the TCP connection")
                data += chunk
            return question.read(data[2:])
    except TimeoutError:
        raise QueryTimeout(f"no TCP answer from {server[0]}") from None
    except (OSError, WireError) as exc:
        raise ServerFailed(f"{server[0]} over TCP: {exc}") from None
