"""Every use of aiosmtpd's private internals, in one place.

aiosmtpd's public API does not let us read DATA in one search, hold pipelined
replies, time out only idle sessions or skip its per-connection AUTH scan; this
module subclasses its `SMTP` and touches the names listed in `INTERNALS`. An
aiosmtpd upgrade that renames one of them fails tests/unit/gateway/smtp loudly
(and `missing_internals()` names it) instead of silently changing behaviour.
The version range in pyproject.toml is the one tested.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import re
from email._header_value_parser import get_addr_spec, get_angle_addr
from email.errors import HeaderParseError
from typing import Any, Protocol

import aiosmtpd
import aiosmtpd.smtp
from aiosmtpd.smtp import MISSING, SMTP, AuthResult, LoginPassword, _AuthMechAttr, syntax

log = logging.getLogger(__name__)

# (owner, attribute) pairs this module relies on; instance attributes set in
# SMTP.__init__ or connection_made are checked on a constructed protocol.
INTERNALS: tuple[tuple[str, str], ...] = (
    ("module", "inspect"),  # replaced below: the AUTH scan and EHLO signature
    ("module", "MISSING"),
    ("module", "syntax"),
    ("module", "sanitized_log"),  # replaced below: skipped when its level is off
    ("class", "_call_handler_hook"),
    ("class", "_timeout_cb"),
    ("class", "_reset_timeout"),
    ("class", "_set_post_data_state"),
    ("class", "_set_rset_state"),
    ("class", "_getaddr"),
    ("class", "check_helo_needed"),
    ("class", "check_auth_needed"),
    ("class", "handle_exception"),
    ("class", "smtp_STARTTLS"),
    ("instance", "_reader"),  # its _buffer: pipelined input, DATA read in one search
    ("instance", "_writer"),
    ("instance", "_handle_hooks"),
    ("instance", "_auth_methods"),
    ("instance", "_tls_protocol"),
    ("instance", "local_part_limit"),
    ("module", "_AuthMechAttr"),  # the submission port's AUTH mechanisms, set by hand
    ("module", "AuthResult"),
    ("module", "LoginPassword"),
    ("class", "_authenticate"),
    ("class", "auth_PLAIN"),
    ("class", "auth_LOGIN"),
    ("class", "_create_session"),
    ("instance", "_auth_require_tls"),
    ("instance", "_timeout_handle"),  # cancelled by connection_lost
    ("instance", "_timeout_duration"),
)
TESTED_VERSIONS = ("1.4.6",)


def missing_internals(protocol: SMTP | None = None) -> list[str]:
    """The names of INTERNALS this aiosmtpd lacks (instance ones only with `protocol`)."""
    owners: dict[str, Any] = {"module": aiosmtpd.smtp, "class": SMTP, "instance": protocol}
    missing = []
    for owner, name in INTERNALS:
        target = owners[owner]
        if target is not None and not hasattr(target, name):
            missing.append(f"aiosmtpd.smtp.{'SMTP.' if owner != 'module' else ''}{name}")
    if protocol is not None and not hasattr(getattr(protocol, "_reader", None), "_buffer"):
        missing.append("asyncio.StreamReader._buffer")
    if "dir(" not in inspect.getsource(SMTP.__init__):
        missing.append("dir() in aiosmtpd.smtp.SMTP.__init__")
    return missing


class _WithoutAuthScan:
    """aiosmtpd looks for auth_* methods with inspect.getmembers() on every new
    connection: a tenth of our CPU per message. An MX offers no AUTH (that belongs
    on a submission port), so the scan finds none: AUTH is refused (504). It also
    takes the signature of the EHLO hook on every connection: that is cached."""

    def __getattr__(self, name: str) -> Any:
        return getattr(inspect, name)

    @staticmethod
    def getmembers(obj: Any, predicate: Any = None) -> list:
        return []

    @staticmethod
    def signature(obj: Any) -> inspect.Signature:
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


_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}
_sanitized_log = aiosmtpd.smtp.sanitized_log


def _sanitized_log_if_enabled(func: Any, msg: Any, *args: Any, **kwargs: Any) -> None:
    """aiosmtpd logs every command line through sanitized_log, which copies and
    scans the arguments before the logger is asked whether the level is on (it is
    not: mail.log is at WARNING unless -vv)."""
    logger = getattr(func, "__self__", None)
    level = _LEVELS.get(getattr(func, "__name__", ""))
    if isinstance(logger, logging.Logger) and level is not None and not logger.isEnabledFor(level):
        return
    _sanitized_log(func, msg, *args, **kwargs)


aiosmtpd.smtp.inspect = _WithoutAuthScan()  # type: ignore[assignment]
aiosmtpd.smtp.dir = _class_dir  # type: ignore[attr-defined]
aiosmtpd.smtp.sanitized_log = _sanitized_log_if_enabled  # type: ignore[assignment]

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
INTERNAL_ERROR_REPLY = "451 4.3.0 Internal error, please try again later"


def with_enhanced_status(reply: str) -> str:
    """Give every 4xx/5xx reply an enhanced status code."""
    if reply[:1] not in ("4", "5"):
        return reply
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


class ConnectionGuard(Protocol):
    """Who may connect, and how long an idle session may stay (gateway.smtp.server)."""

    def admit(self, session: GatewaySMTP, ip: str) -> str | None:
        """None to admit, else the refusal sent before the connection is closed."""

    def release(self, session: GatewaySMTP, ip: str) -> None:
        """Called once for every admitted connection when it ends."""

    def idle_timeout(self) -> float | None:
        """Seconds of silence allowed before MAIL (None: the session timeout)."""


class GatewaySMTP(SMTP):
    """aiosmtpd's SMTP with a connection guard, 421 on timeout, enhanced codes, DATA
    in one read, held pipelined replies and 451 (never 500) for a bug in a hook."""

    def __init__(self, *args: Any, guard: ConnectionGuard | None = None, **kwargs: Any) -> None:
        self._guard = guard
        self._client_ip: str | None = None
        super().__init__(*args, **kwargs)
        self._refused = False
        self._data_seen: int | None = None  # bytes buffered so far, while in DATA
        self._held: list[bytes] = []  # replies not sent yet (see push)
        self._deadline = 0.0  # when the session times out (see _reset_timeout)
        self._armed: float | None = None  # when the armed timer fires, if one is

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        first = self._client_ip is None and not self._refused  # not the STARTTLS re-entry
        if first:
            peer = transport.get_extra_info("peername") or ("unknown", 0)
            refusal = self._guard.admit(self, peer[0]) if self._guard else None
            if refusal:
                self._refused = True
                transport.write(refusal.encode() + b"\r\n")  # type: ignore[attr-defined]
                transport.close()
                return
            self._client_ip = peer[0]
        super().connection_made(transport)
        on_connect = getattr(self.event_handler, "on_connect", None)
        if first and on_connect is not None:
            on_connect(self.session)  # the handler's connect-time checks

    def connection_lost(self, error: Exception | None) -> None:
        if self._refused:
            return
        if self._client_ip is not None:
            if self._guard:
                self._guard.release(self, self._client_ip)
            self._client_ip = None
        super().connection_lost(error)

    @property
    def in_transaction(self) -> bool:
        """MAIL was given (the client is past the idle phase of the session)."""
        envelope = getattr(self, "envelope", None)
        return envelope is not None and envelope.mail_from is not None

    def _reset_timeout(self, duration: float | None = None) -> None:
        """aiosmtpd's, without a new timer for every command: the deadline moves
        later, and a timer that fires before it arms itself again for what is left
        (a session's commands come within milliseconds; its timer fires once)."""
        if duration is None and self._guard is not None and not self.in_transaction:
            duration = self._guard.idle_timeout()
        loop = self.loop
        self._deadline = deadline = loop.time() + (duration or self._timeout_duration)
        if self._armed is not None and self._armed <= deadline:
            return
        if self._timeout_handle is not None:
            self._timeout_handle.cancel()
        self._armed = deadline
        self._timeout_handle = loop.call_at(deadline, self._timer_fired)

    def _timer_fired(self) -> None:
        self._armed = None
        if self.loop.time() < self._deadline:
            self._armed = self._deadline
            self._timeout_handle = self.loop.call_at(self._deadline, self._timer_fired)
            return
        self._timeout_cb()

    @syntax("MAIL FROM: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_MAIL(self, arg: str) -> None:
        """aiosmtpd's; once MAIL is taken the session gets its full timeout."""
        await super().smtp_MAIL(arg)
        if self.in_transaction:
            self._reset_timeout()

    async def push(self, status: str | bytes, hold: bool = True) -> None:  # type: ignore[override]
        """Send a reply; a 250 is held while the client's next command is already
        waiting in the input (RFC 2920 pipelining), so EHLO, MAIL, RCPT and DATA
        sent together are answered with one send instead of one each. (AUTH's 334
        challenges come as bytes.)"""
        if isinstance(status, bytes):
            status = status.decode("ascii", "replace")
        reply = with_enhanced_status(status)
        # "replace": aiosmtpd echoes what a client sent, bytes that are not UTF-8 included
        self._held.append(reply.encode("utf-8" if self.enable_SMTPUTF8 else "ascii", "replace"))
        if hold and reply.startswith("250") and b"\n" in self._reader._buffer:  # type: ignore[attr-defined]
            return  # the next command's reply (at the latest) takes this one along
        self._flush_held()
        await self._writer.drain()

    def _flush_held(self) -> None:
        if self._held and self.transport is not None and not self.transport.is_closing():
            self._held.append(b"")
            self.transport.write(b"\r\n".join(self._held))  # type: ignore[attr-defined]
        self._held.clear()

    async def handle_exception(self, error: Exception) -> str:
        """A bug in a hook: logged with its traceback, the transaction dropped, and
        the client told to try again later; never aiosmtpd's 500 with the text."""
        log.error(
            "%s: internal error in the SMTP session",
            self._client_ip,
            exc_info=(type(error), error, error.__traceback__),
        )
        self._set_rset_state()
        return INTERNAL_ERROR_REPLY

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

    @syntax("STARTTLS", when="tls_context")
    async def smtp_STARTTLS(self, arg: str) -> None:
        """aiosmtpd's, refusing a second STARTTLS inside TLS (RFC 3207 4.2)."""
        if self._tls_protocol is not None:
            await self.push("503 5.5.1 TLS already active")
            return
        await super().smtp_STARTTLS(arg)

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
        # held only for a QUIT already sent (one write for both replies): the client
        # must hear that its message was taken, whatever other commands wait for
        quit_next = self._reader._buffer[:6].upper() == b"QUIT\r\n"  # type: ignore[attr-defined]
        await self.push("250 OK" if status is MISSING else status, hold=quit_next)

    async def _read_data(self) -> bytes | None:
        """The message up to CRLF.CRLF, dot-unstuffed; None if over the size limit
        (the rest is read and dropped so the session can go on)."""
        reader = self._reader
        # A CRLF in front makes an empty message ".CRLF" end like any other.
        reader._buffer[0:0] = b"\r\n"  # type: ignore[attr-defined]  # aiosmtpd uses it too
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
            arrived = len(self._reader._buffer)  # type: ignore[attr-defined]
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


class Authenticator(Protocol):
    """Checks a login on the submission port (gateway.smtp.submission)."""

    async def authenticate(
        self, session: aiosmtpd.smtp.Session, login: bytes, password: bytes
    ) -> tuple[str | None, str]:
        """(the account, the reply to send): the account is None when refused."""


class _Credentials:
    """What aiosmtpd's PLAIN and LOGIN parsed, handed from its synchronous
    `_authenticate` hook to our asynchronous check."""

    def __init__(self, given: LoginPassword) -> None:
        self.given = given


class _SubmissionSession(aiosmtpd.smtp.Session):
    # aiosmtpd sets login_data after each AUTH and logs a deprecation warning for it;
    # we read auth_data (the account) instead
    login_data = None


class SubmissionSMTP(GatewaySMTP):
    """The submission port: AUTH PLAIN and LOGIN, offered only inside TLS (STARTTLS,
    or a connection that is TLS from the start), required before MAIL (530 5.7.0).
    aiosmtpd checks credentials synchronously; an argon2 check and a database read
    must not stall every session, so its hook only hands the parsed credentials on
    and the handler (an Authenticator) checks them in a thread."""

    def __init__(self, *args: Any, implicit_tls: bool = False, **kwargs: Any) -> None:
        self._implicit_tls = implicit_tls
        super().__init__(*args, auth_required=True, auth_require_tls=True, **kwargs)
        # implicit TLS: the whole connection is TLS (no _tls_protocol of STARTTLS);
        # set after __init__, which warns on every connection when given False
        self._auth_require_tls = not implicit_tls
        # the AUTH scan is switched off above (an MX offers no AUTH): name them here
        self._auth_methods = {
            "PLAIN": _AuthMechAttr(self.auth_PLAIN, True),
            "LOGIN": _AuthMechAttr(self.auth_LOGIN, True),
        }

    def _create_session(self) -> aiosmtpd.smtp.Session:
        return _SubmissionSession(self.loop)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if self._implicit_tls and self.session is not None and self.session.ssl is None:
            ssl_object = transport.get_extra_info("ssl_object")
            if ssl_object is not None:
                self.session.ssl = {"ssl_object": ssl_object, "cipher": ssl_object.cipher()}

    def _authenticate(self, mechanism: str, auth_data: Any) -> AuthResult:
        return AuthResult(success=False, handled=False, auth_data=_Credentials(auth_data))

    async def auth_PLAIN(self, _: Any, args: list[str]) -> AuthResult:
        return await self._check(await super().auth_PLAIN(_, args))

    async def auth_LOGIN(self, _: Any, args: list[str]) -> AuthResult:
        return await self._check(await super().auth_LOGIN(_, args))

    async def _check(self, parsed: AuthResult) -> AuthResult:
        credentials = parsed.auth_data
        if not isinstance(credentials, _Credentials):
            return parsed  # aiosmtpd refused the exchange itself (bad base64, "*")
        assert self.session is not None
        given = credentials.given
        handler: Authenticator = self.event_handler
        account, reply = await handler.authenticate(self.session, given.login, given.password)
        if account is None:
            return AuthResult(success=False, handled=False, message=reply)
        return AuthResult(success=True, auth_data=account, message=reply)


def aiosmtpd_version() -> str:
    return str(getattr(aiosmtpd, "__version__", "unknown"))
