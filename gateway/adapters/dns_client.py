"""Asking the configured DNS servers: one UDP socket per event loop, TCP when truncated.

dnspython's async resolver opens and closes a UDP endpoint for every query, which
cost the event loop more than the query itself. `UdpClient` keeps one socket per
event loop (per address family) and matches each reply to its query by the
random 16-bit id, the server's address and the question; anything else that
arrives (a late reply to a query given up, a forgery with a wrong id or question,
garbage) is dropped and the query keeps waiting. Identical questions asked while
one is in flight share it.

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

`blocking_query` is the same for worker threads (pyspf, dkimpy), with dnspython's
synchronous functions: a socket per query there, but those threads mostly find
their answers in the cache the event loop has filled.
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

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype

from gateway.adapters.dns_cache import MAX_NEGATIVE_TTL, MAX_TTL, Answer, Entry, Negative

ROTATE_AFTER = 2_000  # queries per UDP socket before a new one (a new source port)
EDNS_PAYLOAD = 1232  # the size DNS flag day 2020 recommends: no IP fragments


class ServerFailed(Exception):
    """This server gave no usable answer (error rcode, bad reply, refused TCP): ask the next."""


class QueryTimeout(Exception):
    """No answer before the deadline."""


def make_query(name: str, rdtype: str) -> dns.message.QueryMessage:
    """A recursive query with a random id (dnspython's ids are random too, but say so)."""
    query = dns.message.make_query(name, rdtype, use_edns=0, payload=EDNS_PAYLOAD)
    query.id = secrets.randbits(16)
    return query


def interpret(query: dns.message.Message, response: dns.message.Message) -> Entry:
    """The cache entry an answer means; ServerFailed when it is not an answer to keep."""
    if not isinstance(response, dns.message.QueryMessage):
        raise ServerFailed("not an answer to a query")
    rcode = response.rcode()
    if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
        raise ServerFailed(dns.rcode.to_text(rcode))
    try:
        chain = response.resolve_chaining()
    except dns.exception.DNSException as exc:
        raise ServerFailed(f"unusable answer: {exc}") from None
    now = time.monotonic()
    if chain.answer is not None:
        return Answer(tuple(chain.answer), now + min(chain.minimum_ttl, MAX_TTL))
    # the SOA of the authority section gives the negative TTL (dnspython: its TTL and
    # minimum field); without an SOA dnspython's default of 300 s, as before
    ttl = min(chain.minimum_ttl, MAX_NEGATIVE_TTL)
    return Negative(rcode == dns.rcode.NXDOMAIN, now + ttl)


@dataclass
class _Socket:
    """One UDP socket and the queries waiting for a reply on it."""

    transport: asyncio.DatagramTransport
    waiting: dict[int, tuple[dns.message.Message, tuple[str, int], asyncio.Future]] = field(
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
            response = dns.message.from_wire(data)
        except Exception:  # noqa: BLE001 - garbage with a matching id: keep waiting
            return
        if not query.is_response(response):
            return  # same id, other question: not ours
        future.set_result(response)

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
        for server in self.servers:
            if time.monotonic() >= deadline:
                break
            query = make_query(name, rdtype)
            try:
                response = await self._udp(query, server, deadline)
                if response.flags & dns.flags.TC:
                    response = await _tcp(query, server, deadline)
                return interpret(query, response)
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

    async def _udp(
        self, query: dns.message.Message, server: tuple[str, int], deadline: float
    ) -> dns.message.Message:
        family = socket.AF_INET6 if ":" in server[0] else socket.AF_INET
        sock = await self._socket(family)
        while query.id in sock.waiting:
            query.id = secrets.randbits(16)
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        sock.waiting[query.id] = (query, server, future)
        sock.sent += 1
        if sock.sent >= ROTATE_AFTER:
            sock.retired = True  # the next query opens a new socket (a new source port)
        try:
            sock.transport.sendto(query.to_wire(), server)
            return await asyncio.wait_for(future, max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            raise QueryTimeout(f"{query.question[0].name}: no answer from {server[0]}") from None
        except OSError as exc:
            raise ServerFailed(f"{server[0]}: {exc}") from None
        finally:
            sock.waiting.pop(query.id, None)
            sock.close_if_idle()


async def _tcp(
    query: dns.message.Message, server: tuple[str, int], deadline: float
) -> dns.message.Message:
    """The same query over TCP (the UDP answer was truncated)."""

    async def ask() -> dns.message.Message:
        reader, writer = await asyncio.open_connection(server[0], server[1])
        try:
            wire = query.to_wire()
            writer.write(struct.pack("!H", len(wire)) + wire)
            (size,) = struct.unpack("!H", await reader.readexactly(2))
            return dns.message.from_wire(await reader.readexactly(size))
        finally:
            writer.close()

    try:
        response = await asyncio.wait_for(ask(), max(0.0, deadline - time.monotonic()))
    except TimeoutError:
        raise QueryTimeout(f"{query.question[0].name}: no TCP answer from {server[0]}") from None
    except (OSError, EOFError, asyncio.IncompleteReadError, dns.exception.DNSException) as exc:
        raise ServerFailed(f"{server[0]} over TCP: {exc}") from None
    if not query.is_response(response):
        raise ServerFailed(f"{server[0]} over TCP: an answer to another question")
    return response


def blocking_query(servers: list[tuple[str, int]], name: str, rdtype: str, timeout: float) -> Entry:
    """`UdpClient.query` for a worker thread (no event loop): a socket per query."""
    deadline = time.monotonic() + timeout
    failure: Exception = QueryTimeout(f"{name}/{rdtype}")
    for host, port in servers:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        query = make_query(name, rdtype)
        try:
            response, _tcp_used = dns.query.udp_with_fallback(
                query, host, timeout=left, port=port, ignore_unexpected=True, ignore_errors=True
            )
            return interpret(query, response)
        except dns.exception.Timeout:
            failure = QueryTimeout(f"{name}/{rdtype}: no answer from {host}")
        except ServerFailed as exc:
            failure = exc
        except (OSError, EOFError, dns.exception.DNSException) as exc:
            failure = ServerFailed(f"{host}: {exc}")
    raise failure
