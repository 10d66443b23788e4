"""Lean SMTP load: a pipelining client and a counting sink on raw asyncio streams.

The relay benchmark measures the gateway, not its load generator: aiosmtplib
and aiosmtpd cost as much CPU per message as the gateway itself, so on a
2-core machine they would measure each other. These speak just enough SMTP
(RFC 2920 pipelining) to drive and receive real traffic over real sockets.
"""

from __future__ import annotations

import asyncio
import time


async def _reply(reader: asyncio.StreamReader) -> bytes:
    """One complete reply (the last line of a multi-line one)."""
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("connection closed")
        if line[3:4] != b"-":
            return line


async def send_one(host: str, port: int, sender: str, rcpt: str, data: bytes) -> bytes:
    """One transaction in three round trips; returns the reply to the final dot."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        await _reply(reader)  # greeting
        commands = f"EHLO load.test\r\nMAIL FROM:<{sender}>\r\nRCPT TO:<{rcpt}>\r\nDATA\r\n"
        writer.write(commands.encode())
        for expected in (b"250", b"250", b"250", b"354"):
            line = await _reply(reader)
            if not line.startswith(expected):
                return line
        writer.write(data.replace(b"\r\n.", b"\r\n..") + b"\r\n.\r\nQUIT\r\n")
        final = await _reply(reader)
        await _reply(reader)
        return final
    finally:
        writer.close()


class CountingSink:
    """An SMTP server that accepts everything and notes when each Subject arrived."""

    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}
        self.server: asyncio.base_events.Server | None = None

    async def start(self, host: str = "127.0.0.1") -> int:
        self.server = await asyncio.start_server(self._session, host, 0)
        return self.server.sockets[0].getsockname()[1]

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 sink ESMTP\r\n")
        try:
            while line := await reader.readline():
                verb = line[:4].upper()
                if verb == b"EHLO":
                    writer.write(b"250-sink\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
                elif verb == b"DATA":
                    writer.write(b"354 go on\r\n")
                    data = await reader.readuntil(b"\r\n.\r\n")
                    start = data.find(b"\r\nSubject: ") + 11
                    tag = data[start : data.find(b"\r\n", start)].decode()
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
