"""Lean SMTP load: a pipelining client and a counting sink on raw asyncio streams.

The relay benchmark measures the gateway, not its load generator: aiosmtplib
and aiosmtpd cost as much CPU per message as the gateway itself, so on a
2-core machine they would measure each other. These speak just enough SMTP
(RFC 2920 pipelining) to drive and receive real traffic over real sockets.

Real corpus mail is sent as the wire carries it: every line ending becomes CRLF
(corpora store LF), a leading "From " mbox line is dropped, dots are stuffed on
every line including the first, and 8-bit mail is announced as BODY=8BITMIME.
The sink reads messages of any size and finds a message's tag in its
`X-Bench-Tag` header, so a Subject in any charset does not matter.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time

TAG_HEADER = b"X-Bench-Tag"
READ_LIMIT = 64 * 1024 * 1024  # the sink's longest line / message: real mail is big
_LINE_END = re.compile(rb"\r\n|\r|\n")


async def _reply(reader: asyncio.StreamReader) -> bytes:
    """One complete reply (the last line of a multi-line one)."""
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("connection closed")
        if line[3:4] != b"-":
            return line


def wire_form(raw: bytes) -> bytes:
    """A stored message as DATA carries it: CRLF lines, no mbox "From " line, dot-stuffed,
    ending with CRLF (the caller adds the final dot)."""
    if raw.startswith(b"From "):
        raw = raw.split(b"\n", 1)[1] if b"\n" in raw else b""
    raw = _LINE_END.sub(b"\r\n", raw)
    if not raw.endswith(b"\r\n"):
        raw += b"\r\n"
    if raw.startswith(b"."):
        raw = b"." + raw
    return raw.replace(b"\r\n.", b"\r\n..")


def tagged(tag: str, raw: bytes) -> bytes:
    """The message with our tag header first (the sink finds arrivals by it)."""
    return TAG_HEADER + b": " + tag.encode() + b"\r\n" + raw


async def send_one(
    host: str, port: int, sender: str, rcpt: str, data: bytes, *, prepared: bool = False
) -> bytes:
    """One transaction in three round trips; returns the reply to the final dot.
    `prepared`: data is already in wire form (see `wire_form`)."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        await _reply(reader)  # greeting
        body = data if prepared else wire_form(data)
        eight_bit = " BODY=8BITMIME" if any(b > 127 for b in body) else ""
        commands = (
            f"EHLO load.test\r\nMAIL FROM:<{sender}>{eight_bit}\r\nRCPT TO:<{rcpt}>\r\nDATA\r\n"
        )
        writer.write(commands.encode())
        for expected in (b"250", b"250", b"250", b"354"):
            line = await _reply(reader)
            if not line.startswith(expected):
                return line
        writer.write(body + b".\r\nQUIT\r\n")
        final = await _reply(reader)
        with contextlib.suppress(ConnectionError):  # the server may close instead of a 221
            await _reply(reader)
        return final
    finally:
        writer.close()


def find_tag(data: bytes) -> str | None:
    """The X-Bench-Tag of a received message (in its header block), if any."""
    end = data.find(b"\r\n\r\n")
    head = data if end < 0 else data[:end]
    start = head.find(TAG_HEADER + b": ")
    if start < 0:
        return None
    start += len(TAG_HEADER) + 2
    stop = head.find(b"\r\n", start)
    return head[start : stop if stop >= 0 else len(head)].decode("ascii", "replace").strip()


class CountingSink:
    """An SMTP server that accepts everything and notes when each tagged message arrived."""

    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}
        self.server: asyncio.base_events.Server | None = None

    async def start(self, host: str = "127.0.0.1") -> int:
        self.server = await asyncio.start_server(self._session, host, 0, limit=READ_LIMIT)
        return self.server.sockets[0].getsockname()[1]

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 sink ESMTP\r\n")
        try:
            while line := await reader.readline():
                verb = line[:4].upper()
                if verb == b"EHLO":
                    writer.write(b"250-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n")
                elif verb == b"DATA":
                    writer.write(b"354 go on\r\n")
                    data = await reader.readuntil(b"\r\n.\r\n")
                    tag = find_tag(data)
                    if tag is not None:
                        self.arrivals[tag] = time.time()
                    writer.write(b"250 2.0.0 Ok\r\n")
                elif verb == b"QUIT":
                    writer.write(b"221 bye\r\n")
                    break
                else:
                    writer.write(b"250 Ok\r\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
