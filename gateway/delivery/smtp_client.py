"""The SMTP client that delivery speaks to the next hop and to MX hosts.

One connection: greeting, EHLO, opportunistic STARTTLS, then mail transactions.
With PIPELINING (RFC 2920) a transaction is two round trips: MAIL, every RCPT and
DATA in one write, then the message and its final dot in another; without it one
command at a time. The message is sent as spooled (CRLF lines): only dots are
stuffed, by one bytes replace (bare CR or LF, which the intake never spools, are
made CRLF first). aiosmtplib, used before, costs a round trip a command and two
regular expressions over every copy; the errors here keep its names and texts
(they end up in the ledger's last_error and the delivery events).
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections import deque
from dataclasses import dataclass

from aiosmtplib.email import quote_address

MAX_LINE = 8192
MAX_RESPONSE = 4 * MAX_LINE
_LINE_END = re.compile(rb"\r\n|\n|\r(?!\n)")
_PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9.-]+")
_CONTROL = re.compile(rb"[\x00-\x1f\x7f]")


class SMTPException(Exception):
    """Any failure of the SMTP exchange (not of the network below it)."""


class SMTPServerDisconnected(SMTPException, ConnectionError):
    pass


class SMTPConnectError(SMTPException, ConnectionError):
    pass


class SMTPTimeoutError(SMTPException, TimeoutError):
    pass


class SMTPResponseException(SMTPException):
    """The server answered with a code the step did not expect."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"({self.code}, {self.message!r})"


@dataclass(frozen=True)
class Response:
    code: int
    message: str


def quoted(address: str) -> str:
    """`<address>` as aiosmtplib quoted it (its parser only for what is not plain)."""
    if _PLAIN_ADDRESS.fullmatch(address):
        return f"<{address}>"
    return quote_address(address)


def data_block(message: bytes) -> bytes:
    """The message as DATA carries it: CRLF lines ending in CRLF, dots stuffed, and
    the final dot."""
    crlf = message.count(b"\r\n")
    if message.count(b"\r") != crlf or message.count(b"\n") != crlf:  # a bare CR or LF
        message = _LINE_END.sub(b"\r\n", message)
    if not message.endswith(b"\r\n"):
        message += b"\r\n"
    if message.startswith(b"."):
        message = b"." + message
    return message.replace(b"\r\n.", b"\r\n..") + b".\r\n"


class _Replies(asyncio.Protocol):
    """Splits what the server sends into complete replies, in order, however they
    arrive (several in one read, one across several)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.replies: deque[Response | BaseException] = deque()
        self.waiter: asyncio.Future[None] | None = None
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            try:
                reply = self._take()
            except SMTPResponseException as exc:
                self.buffer.clear()
                self._put(exc)
                return
            if reply is None:
                break
            self._put(reply)
        if len(self.buffer) > MAX_RESPONSE:
            self.buffer.clear()
            self._put(SMTPResponseException(-1, "Response too long"))

    def _take(self) -> Response | None:
        """One complete reply from the front of the buffer, if there is one."""
        buffer = self.buffer
        lines: list[bytes] = []
        offset = 0
        while True:
            end = buffer.find(b"\n", offset)
            if end < 0:
                return None
            line = bytes(buffer[offset : end + 1])
            if len(line) > MAX_LINE:
                raise SMTPResponseException(-1, "Response too long")
            try:
                code = int(line[:3])
            except ValueError:
                text = line.decode("utf-8", errors="ignore")
                raise SMTPResponseException(-1, f"Malformed SMTP response line: {text}") from None
            offset = end + 1
            lines.append(line[4:].strip(b" \t\r\n"))
            if line[3:4] != b"-":
                del buffer[:offset]
                return Response(code, b"\n".join(lines).decode("utf-8", "surrogateescape"))

    def _put(self, item: Response | BaseException) -> None:
        self.replies.append(item)
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def eof_received(self) -> bool:
        self._put(SMTPServerDisconnected("Unexpected EOF received"))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        error = SMTPServerDisconnected("Connection lost")
        error.__cause__ = exc
        self._put(error)


class SmtpClient:
    """One SMTP connection. `await SmtpClient.open(...)` connects, reads the greeting
    and says EHLO; failures raise SMTPException or OSError."""

    def __init__(self, protocol: _Replies, command_timeout: float | None) -> None:
        self._protocol = protocol
        self.timeout = command_timeout
        self.extensions: dict[str, str] = {}

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        local_hostname: str,
        connect_timeout: float | None,
        command_timeout: float | None,
    ) -> SmtpClient:
        loop = asyncio.get_running_loop()
        client: SmtpClient | None = None
        try:
            async with asyncio.timeout(connect_timeout):
                _, protocol = await loop.create_connection(_Replies, host, port)
                client = cls(protocol, command_timeout)
                greeting = await client.read()
        except TimeoutError as exc:
            if client is not None:  # connected, but no greeting in time
                client.close()
            raise SMTPTimeoutError(f"Timed out connecting to {host} on port {port}") from exc
        except OSError as exc:
            if client is not None:
                client.close()
            raise SMTPConnectError(f"Error connecting to {host} on port {port}: {exc}") from exc
        if greeting.code != 220:
            client.close()
            raise SMTPConnectError(f"Error connecting to {host} on port {port}: {greeting}")
        await client.ehlo(local_hostname)
        return client

    @property
    def is_connected(self) -> bool:
        """Open, and nothing unasked waiting in it (an idle session the server ended
        with a 421 before closing is not used again)."""
        protocol = self._protocol
        transport = protocol.transport
        return (
            not protocol.lost
            and not protocol.replies
            and transport is not None
            and not transport.is_closing()
        )

    def supports(self, extension: str) -> bool:
        return extension.lower() in self.extensions

    def close(self) -> None:
        transport = self._protocol.transport
        if transport is not None:
            transport.close()

    def _write(self, data: bytes) -> None:
        transport = self._protocol.transport
        if self._protocol.lost or transport is None or transport.is_closing():
            raise SMTPServerDisconnected("Connection lost")
        transport.write(data)

    async def read(self) -> Response:
        """The next reply, in the order the commands were sent."""
        protocol = self._protocol
        if not protocol.replies:
            loop = asyncio.get_running_loop()
            waiter = protocol.waiter = loop.create_future()
            # a bare timer, not asyncio.timeout(): this wait is most of a transaction's
            timer = None if self.timeout is None else loop.call_later(self.timeout, _expire, waiter)
            try:
                await waiter
            except SMTPTimeoutError:
                self.close()
                raise
            finally:
                protocol.waiter = None
                if timer is not None:
                    timer.cancel()
        reply = protocol.replies.popleft()
        if isinstance(reply, BaseException):
            self.close()
            raise reply
        return reply

    async def command(self, *words: bytes) -> Response:
        self._write(_command(*words))
        return await self.read()

    async def ehlo(self, hostname: str) -> Response:
        reply = await self.command(b"EHLO", hostname.encode("ascii"))
        if reply.code != 250:
            raise SMTPResponseException(reply.code, reply.message)
        self.extensions = {}
        for line in reply.message.split("\n")[1:]:
            keyword, _, params = line.strip().partition(" ")
            if keyword:
                self.extensions[keyword.lower()] = params
        return reply

    async def starttls(self, context: ssl.SSLContext, server_hostname: str) -> None:
        reply = await self.command(b"STARTTLS")
        if reply.code != 220:
            raise SMTPResponseException(reply.code, reply.message)
        loop = asyncio.get_running_loop()
        protocol = self._protocol
        assert protocol.transport is not None
        async with asyncio.timeout(self.timeout):
            tls = await loop.start_tls(
                protocol.transport, protocol, context, server_hostname=server_hostname
            )
        protocol.transport = tls
        self.extensions = {}

    async def rset(self) -> Response:
        return await self.command(b"RSET")

    async def quit(self) -> None:
        """QUIT and close (a server that closes instead of answering is done too)."""
        try:
            await self.command(b"QUIT")
        except SMTPServerDisconnected:
            pass
        finally:
            self.close()

    async def transaction(
        self,
        sender: str,
        options: list[str],
        rcpts: list[str],
        message: bytes,
        encoding: str = "ascii",
    ) -> tuple[Response, list[Response], Response | None]:
        """MAIL, RCPT for each recipient and, when one was accepted, the message.
        Returns the reply to MAIL, the replies to each RCPT and the final reply to
        the message (None when it was not sent: MAIL refused, every recipient
        refused, or DATA refused: then the reply to DATA). A refused transaction
        is reset (RSET) before returning, so the connection can be used again."""
        mail = _command(b"MAIL", b"FROM:" + quoted(sender).encode(encoding), *_ascii(options))
        commands = [_command(b"RCPT", b"TO:" + quoted(r).encode(encoding)) for r in rcpts]
        if self.supports("pipelining"):
            self._write(mail + b"".join(commands) + b"DATA\r\n")
            mail_reply = await self.read()
            rcpt_replies = [await self.read() for _ in rcpts]
            data_reply = await self.read()
            if mail_reply.code != 250 or not _any_accepted(rcpt_replies):
                if data_reply.code == 354:  # a server that took DATA with no recipient
                    self._write(b".\r\n")
                    await self.read()
                await self.rset()
                return mail_reply, rcpt_replies, None
        else:
            self._write(mail)
            mail_reply = await self.read()
            if mail_reply.code != 250:
                await self.rset()
                return mail_reply, [], None
            rcpt_replies = []
            for line in commands:
                self._write(line)
                rcpt_replies.append(await self.read())
            if not _any_accepted(rcpt_replies):
                await self.rset()
                return mail_reply, rcpt_replies, None
            data_reply = await self.command(b"DATA")
        if data_reply.code != 354:
            try:
                await self.rset()
            except (SMTPException, OSError):
                self.close()
            return mail_reply, rcpt_replies, data_reply
        self._write(data_block(message))
        return mail_reply, rcpt_replies, await self.read()


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(SMTPTimeoutError("Timed out waiting for server response"))


def _command(*words: bytes) -> bytes:
    for word in words:
        if _CONTROL.search(word):
            raise ValueError("Command arg contains a prohibited control character")
    return b" ".join(words) + b"\r\n"


def _ascii(options: list[str]) -> list[bytes]:
    return [option.encode("ascii") for option in options]


def accepted(reply: Response) -> bool:
    return reply.code in (250, 251)


def _any_accepted(replies: list[Response]) -> bool:
    return any(accepted(r) for r in replies)
