"""SMTP in: aiosmtpd with relay control, session limits and enhanced status codes.

The handler refuses what it can as early as it can (relay, recipient count,
session checks), and hands DATA to the intake, which filters before answering:
a rejection is an SMTP reply, never a bounce to a forged sender.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import re
import ssl
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from email._header_value_parser import get_addr_spec, get_angle_addr
from email.errors import HeaderParseError
from typing import Any

import aiosmtpd.smtp
from aiosmtpd.smtp import MISSING, SMTP, Session, syntax
from aiosmtpd.smtp import Envelope as SmtpEnvelope

from filters.session import SessionCheck, SessionInfo
from gateway.adapters.dns import DnsError, NoRecord, Resolver
from gateway.config import Settings, parse_host_port
from gateway.model import Envelope, Reply
from gateway.monitor import events
from gateway.smtp.intake import Intake
from gateway.store import ledger

log = logging.getLogger(__name__)


class _WithoutAuthScan:
    """aiosmtpd looks for auth_* methods with inspect.getmembers() on every new
    connection: a tenth of our CPU per message. An MX offers no AUTH (that belongs
    on a submission port), so the scan finds none: AUTH is refused (504). It also
    takes the signature of the EHLO hook on every connection: that is cached."""

    def __getattr__(self, name: str):
        return getattr(inspect, name)

    @staticmethod
    def getmembers(obj, predicate=None) -> list:
        return []

    @staticmethod
    def signature(obj) -> inspect.Signature:
        key = (getattr(obj, "__func__", obj), hasattr(obj, "__self__"))
        if key not in _SIGNATURES:
            _SIGNATURES[key] = inspect.signature(obj)
        return _SIGNATURES[key]


_SIGNATURES: dict[tuple[Any, bool], inspect.Signature] = {}


def _class_dir(obj: Any) -> list[str]:
    """What aiosmtpd's dir() calls look for, on every connection: the handle_* and
    smtp_* methods of the handler and protocol. They are class attributes, so the
    list is made once per class."""
    return _hooks_of_class(type(obj))


@functools.lru_cache(maxsize=64)
def _hooks_of_class(cls: type) -> list[str]:
    return [name for name in dir(cls) if name.startswith(("handle_", "smtp_"))]


aiosmtpd.smtp.inspect = _WithoutAuthScan()  # type: ignore[assignment]
aiosmtpd.smtp.dir = _class_dir  # type: ignore[attr-defined]

# Enhanced status codes (RFC 3463) for aiosmtpd's own replies that lack one.
_REWRITES = {
    "553 5.1.3 Error: malformed address": "501 5.1.3 Bad address syntax",
    "552 Error: Too much mail data": "552 5.3.4 Message size exceeds fixed limit",
}
_DEFAULT_STATUS = {
    421: "4.3.2",
    450: "4.2.0",
    451: "4.3.0",
    452: "4.3.1",
    454: "4.7.0",
    500: "5.5.2",
    501: "5.5.4",
    502: "5.5.1",
    503: "5.5.1",
    504: "5.5.4",
    530: "5.7.0",
    550: "5.0.0",
    552: "5.3.4",
    553: "5.1.3",
    554: "5.0.0",
    555: "5.5.4",
}
_NEEDS_STATUS = re.compile(r"^([45]\d\d) (?!\d\.\d{1,3}\.\d{1,3}\b)")


def with_enhanced_status(reply: str) -> str:
    """Give every 4xx/5xx reply an enhanced status code."""
    reply = _REWRITES.get(reply, reply)
    match = _NEEDS_STATUS.match(reply)
    if not match:
        return reply
    code = int(match.group(1))
    status = _DEFAULT_STATUS.get(code, f"{code // 100}.0.0")
    return f"{code} {status} {reply[4:]}"


DATA_END = b"\r\n.\r\n"
# <local@domain> with a dot-atom local part and a plain domain, then the parameters
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_PLAIN_PATH = re.compile(rf"\s*<({_ATOM}(?:\.{_ATOM})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)>(.*)$")
NULL_SENDER = "<>"  # how aiosmtpd hands us the null reverse-path


class SessionLimiter:
    """Concurrent sessions in total and per client IP (answered with 421 when full)."""

    def __init__(self, total: int, per_ip: int) -> None:
        self.total, self.per_ip = total, per_ip
        self.by_ip: Counter[str] = Counter()

    @property
    def active(self) -> int:
        return sum(self.by_ip.values())

    def acquire(self, ip: str) -> str | None:
        if self.active >= self.total:
            return "421 4.7.0 Too many connections, try again later"
        if self.by_ip[ip] >= self.per_ip:
            return "421 4.7.0 Too many connections from your address, try again later"
        self.by_ip[ip] += 1
        return None

    def release(self, ip: str) -> None:
        self.by_ip[ip] -= 1
        if self.by_ip[ip] <= 0:
            del self.by_ip[ip]


class GatewaySMTP(SMTP):
    """aiosmtpd's SMTP with session limits, 421 on timeout and enhanced codes."""

    def __init__(self, *args: Any, limiter: SessionLimiter, sessions: set, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._limiter = limiter
        self._sessions = sessions
        self._client_ip: str | None = None
        self._refused = False
        self._data_seen: int | None = None  # bytes buffered so far, while in DATA
        self._held: list[bytes] = []  # replies not sent yet (see push)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._client_ip is None and not self._refused:  # not the STARTTLS re-entry
            peer = transport.get_extra_info("peername") or ("unknown", 0)
            refusal = self._limiter.acquire(peer[0])
            if refusal:
                self._refused = True
                transport.write(refusal.encode() + b"\r\n")  # type: ignore[attr-defined]
                transport.close()
                return
            self._client_ip = peer[0]
            self._sessions.add(self)
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        if self._refused:
            return
        if self._client_ip is not None:
            self._limiter.release(self._client_ip)
            self._sessions.discard(self)
            self._client_ip = None
        super().connection_lost(error)

    async def push(self, status: str, hold: bool = True) -> None:
        """Send a reply; a 250 is held while the client's next command is already
        waiting in the input (RFC 2920 pipelining), so EHLO, MAIL, RCPT and DATA
        sent together are answered with one send instead of one each."""
        reply = with_enhanced_status(status)
        self._held.append(reply.encode("utf-8" if self.enable_SMTPUTF8 else "ascii"))
        if hold and reply.startswith("250") and b"\n" in self._reader._buffer:
            return  # the next command's reply (at the latest) takes this one along
        self._flush_held()
        await self._writer.drain()

    def _flush_held(self) -> None:
        if self._held and self.transport is not None and not self.transport.is_closing():
            self._held.append(b"")
            self.transport.write(b"\r\n".join(self._held))  # type: ignore[attr-defined]
        self._held.clear()

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        """aiosmtpd's own, with a fast path for the plain <local@domain> that nearly
        every client sends (the RFC 5322 parser costs more than the rest of MAIL)."""
        if not arg:
            return "", ""
        plain = _PLAIN_PATH.match(arg)
        if plain:
            return plain.group(1), plain.group(2)
        try:
            if arg.lstrip().startswith("<"):
                address, rest = get_angle_addr(arg)
            else:
                address, rest = get_addr_spec(arg)
        except HeaderParseError:
            return None, None
        addr = address.addr_spec
        if self.local_part_limit and len(addr.rpartition("@")[0]) > self.local_part_limit:
            return None, None
        return addr, rest

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        """aiosmtpd's DATA, reading the message in one search for CRLF.CRLF instead of
        line by line (ten times less CPU on big messages) and without a line length
        limit (long lines are broken for delivery instead, as Postfix does)."""
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        data = await self._read_data()
        if data is None:
            await self.push("552 Error: Too much mail data")
            self._set_post_data_state()
            return
        self.envelope.content = self.envelope.original_content = data
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        # never held: the client must hear that its message was taken, whatever
        # the commands after it may wait for
        await self.push("250 OK" if status is MISSING else status, hold=False)

    async def _read_data(self) -> bytes | None:
        """The message up to CRLF.CRLF, dot-unstuffed; None if over the size limit
        (the rest is read and dropped so the session can go on)."""
        reader = self._reader
        # A CRLF in front makes an empty message ".CRLF" end like any other.
        reader._buffer[0:0] = b"\r\n"  # aiosmtpd itself works on this buffer (STARTTLS)
        self._data_seen = 0
        try:
            try:
                raw = await reader.readuntil(DATA_END)
            except asyncio.LimitOverrunError as exc:
                await reader.read(exc.consumed)
                while True:
                    try:
                        await reader.readuntil(DATA_END)
                        return None
                    except asyncio.LimitOverrunError as more:
                        await reader.read(more.consumed)
        finally:
            self._data_seen = None
        body = bytes(raw[:-3]).replace(b"\r\n.", b"\r\n")[2:]
        if self.data_size_limit and len(body) > self.data_size_limit:
            return None
        return body

    def _timeout_cb(self) -> None:
        if self._data_seen is not None:  # inside DATA: silence only if nothing arrived
            arrived = len(self._reader._buffer)
            if arrived != self._data_seen:
                self._data_seen = arrived
                self._reset_timeout()
                return
        self._flush_held()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"421 4.4.2 Timeout, closing connection\r\n")  # type: ignore[attr-defined]
        super()._timeout_cb()

    def close_for_shutdown(self) -> None:
        self._flush_held()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"421 4.3.2 Service shutting down, try later\r\n")  # type: ignore[attr-defined]
            self.transport.close()


_LOCAL_DOT_ATOM = re.compile(r"^[^\s\"(),:;<>@\[\\\]]+$")
_DOMAIN = re.compile(r"^(\[[^\]\s]+\]|[^\s@\[\]\\\"(),:;<>]+)$")


def split_address(address: str) -> tuple[str, str] | None:
    """(local part, lower-cased domain) of a mailbox, or None if it is malformed."""
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain or len(address) > 512:
        return None
    quoted = len(local) >= 2 and local[0] == local[-1] == '"'
    if not quoted and (
        not _LOCAL_DOT_ATOM.match(local) or ".." in local or local[0] == "." or local[-1] == "."
    ):
        return None
    if not _DOMAIN.match(domain) or (not domain.startswith("[") and "" in domain.split(".")):
        return None
    return local, domain.lower().rstrip(".")


class GatewayHandler:
    """aiosmtpd handler hooks: relay control, limits, session checks, then intake."""

    def __init__(
        self,
        settings: Settings,
        intake: Intake,
        checks: Sequence[SessionCheck] = (),
        resolver: Resolver | None = None,
    ):
        self.settings = settings
        self.intake = intake
        self.checks = list(checks)
        self.resolver = resolver
        self._background: set[asyncio.Task] = set()

    @staticmethod
    def _info(session: Session) -> SessionInfo:
        return SessionInfo(
            client_ip=session.peer[0] if session.peer else "unknown",
            helo=session.host_name or "",
            client_hostname=_ptr_result(session),
            tls=session.ssl is not None,
        )

    def _record_refusal(
        self,
        info: SessionInfo,
        stage: str,
        sender: str,
        rcpt: str | None,
        reply: Reply,
        source: str,
    ) -> None:
        """Evidence of a refused sender for the ledger (who, when, why), written in the
        background: the refusal itself does not wait for it."""
        row = _refusal_row(info, stage, sender, rcpt, str(reply), source)
        events.refusal(row)
        task = asyncio.ensure_future(self.intake.db.write(ledger.record_refusal, row))
        self._background.add(task)
        task.add_done_callback(self._refusal_written)

    def _log_refusal(
        self, session: Session, stage: str, sender: str, rcpt: str | None, reply: str, source: str
    ) -> str:
        """A refusal that is no evidence against a source (bad syntax, limits): logged
        and counted, not written to the ledger. Returns the reply."""
        events.refusal(_refusal_row(self._info(session), stage, sender, rcpt, reply, source))
        return reply

    def _refusal_written(self, task: asyncio.Task) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("could not record a refusal: %s", task.exception())

    def _start_ptr_lookup(self, session: Session) -> None:
        """The client's reverse DNS name, looked up while the dialogue goes on."""
        if self.resolver is None or hasattr(session, "ptr") or not session.peer:
            return
        if _is_loopback(session.peer[0]):
            session.ptr = _done("localhost")  # a local client: no query worth making
            return
        session.ptr = asyncio.ensure_future(_first_ptr(self.resolver, session.peer[0]))

    async def handle_HELO(self, server, session, envelope, hostname):
        session.host_name = hostname
        self._start_ptr_lookup(session)
        return f"250 {server.hostname}"

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        self._start_ptr_lookup(session)
        out = [r for r in responses[:-1] if not r.startswith("250-AUTH")]
        out += ["250-PIPELINING", "250-ENHANCEDSTATUSCODES", "250 HELP"]
        return out

    async def handle_MAIL(self, server, session, envelope: SmtpEnvelope, address, mail_options):
        sender = "" if address == NULL_SENDER else address
        if sender and split_address(sender) is None:
            reply = "501 5.1.7 Bad sender address syntax"
            return self._log_refusal(session, "mail", sender, None, reply, "syntax")
        info = self._info(session)
        for check in self.checks:
            refusal = await check.check_mail(info, sender)
            if refusal is not None:
                self._record_refusal(info, "mail", sender, None, refusal, check.name)
                return str(refusal)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Ok"

    async def handle_RCPT(self, server, session, envelope: SmtpEnvelope, address, rcpt_options):
        parts = split_address(address)
        if parts is None:
            reply = "501 5.1.3 Bad recipient address syntax"
            return self._log_refusal(session, "rcpt", _sender(envelope), address, reply, "syntax")
        if not self.settings.accepts(parts[1]):
            denied = Reply(550, "5.7.1", "Relaying denied: we do not accept mail for that domain")
            self._record_refusal(
                self._info(session), "rcpt", _sender(envelope), address, denied, "relay"
            )
            return str(denied)
        if address.lower() in (r.lower() for r in envelope.rcpt_tos):
            return "250 2.1.5 Ok (duplicate recipient)"
        if len(envelope.rcpt_tos) >= self.settings.smtp.max_recipients:
            reply = "452 4.5.3 Too many recipients"
            return self._log_refusal(session, "rcpt", _sender(envelope), address, reply, "limit")
        info = self._info(session)
        for check in self.checks:
            refusal = await check.check_rcpt(info, _sender(envelope), address)
            if refusal is not None:
                self._record_refusal(info, "rcpt", _sender(envelope), address, refusal, check.name)
                return str(refusal)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session: Session, envelope: SmtpEnvelope):
        options = {o.upper() for o in envelope.mail_options}
        ptr = getattr(session, "ptr", None)
        if ptr is not None and not ptr.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(ptr), self.settings.dns.timeout)
        env = Envelope(
            mail_from=_sender(envelope),
            rcpt_tos=tuple(envelope.rcpt_tos),
            client_ip=session.peer[0] if session.peer else "unknown",
            helo=session.host_name or "",
            client_hostname=_ptr_result(session),
            tls=session.ssl is not None,
            smtputf8=envelope.smtp_utf8,
            body_8bitmime="BODY=8BITMIME" in options,
        )
        reply = await self.intake.receive(env, envelope.original_content or b"")
        return str(reply)


def _refusal_row(
    info: SessionInfo, stage: str, sender: str, rcpt: str | None, reply: str, source: str
) -> dict[str, Any]:
    return {
        "at": datetime.now(UTC),
        "client_ip": info.client_ip,
        "client_hostname": info.client_hostname,
        "helo": info.helo[:255],
        "mail_from": sender[:512],
        "rcpt": rcpt[:512] if rcpt else None,
        "stage": stage,
        "source": source[:64],
        "reply": reply[:512],
    }


async def _first_ptr(resolver: Resolver, ip: str) -> str | None:
    try:
        names = await resolver.ptr(ip)
    except (DnsError, NoRecord, ValueError):
        return None
    return names[0] if names else None


def _is_loopback(ip: str) -> bool:
    """This host itself (other 127/8 addresses are looked up: tests use them)."""
    return ip in ("127.0.0.1", "::1")


def _done(value: str) -> asyncio.Future:
    future = asyncio.get_running_loop().create_future()
    future.set_result(value)
    return future


def _ptr_result(session: Session) -> str | None:
    ptr = getattr(session, "ptr", None)
    if ptr is None or not ptr.done() or ptr.cancelled():
        return None
    return ptr.result()


def _sender(envelope: SmtpEnvelope) -> str:
    return "" if envelope.mail_from in (None, NULL_SENDER) else envelope.mail_from


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    smtp = settings.smtp
    if smtp.tls_cert is None or smtp.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(smtp.tls_cert), str(smtp.tls_key))
    return context


class SmtpServer:
    """The listening socket, its sessions and a graceful stop."""

    def __init__(self, settings: Settings, handler: GatewayHandler) -> None:
        self.settings = settings
        self.handler = handler
        self.limiter = SessionLimiter(settings.smtp.max_sessions, settings.smtp.max_sessions_per_ip)
        self.sessions: set[GatewaySMTP] = set()
        self._server: asyncio.base_events.Server | None = None
        self._tls = tls_context(settings)
        limit = settings.smtp.max_message_size + 4096

        # A whole message may be one long line: accept it (bounded by the size
        # limit) rather than refuse real-world mail with lines over 998 chars.
        class _Protocol(GatewaySMTP):
            line_length_limit = limit

        self._protocol_class = _Protocol

    def _protocol(self) -> GatewaySMTP:
        smtp = self.settings.smtp
        return self._protocol_class(
            self.handler,
            loop=asyncio.get_running_loop(),  # else aiosmtpd looks it up with warnings caught
            limiter=self.limiter,
            sessions=self.sessions,
            data_size_limit=smtp.max_message_size,
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname=smtp.hostname,
            ident="mailwarden ESMTP",
            tls_context=self._tls,
            require_starttls=smtp.require_tls,
            timeout=smtp.timeout,
        )

    async def start(self) -> tuple[str, int]:
        host, port = parse_host_port(self.settings.smtp.listen)
        loop = asyncio.get_running_loop()
        # several worker processes share the port; a lone gateway must not share it
        # silently with another one started by mistake
        shared = self.settings.smtp.processes > 1
        self._server = await loop.create_server(
            self._protocol, host=host, port=port, reuse_port=shared or None
        )
        sock = self._server.sockets[0].getsockname()
        log.info("listening on %s:%s", sock[0], sock[1])
        return sock[0], sock[1]

    async def stop(self, grace: float) -> None:
        """Stop accepting; let sessions finish for `grace` seconds; then close them."""
        if self._server is None:
            return
        self._server.close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while self.sessions and loop.time() < deadline:
            await asyncio.sleep(0.05)
        for session in list(self.sessions):
            session.close_for_shutdown()
        await self.intake_idle(deadline=loop.time() + grace)
        self._server = None

    async def intake_idle(self, deadline: float) -> None:
        """Wait for messages being committed (their 250 may not have gone out)."""
        loop = asyncio.get_running_loop()
        while self.handler.intake.in_flight and loop.time() < deadline:
            await asyncio.sleep(0.05)
