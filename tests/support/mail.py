"""Building test messages and talking SMTP the way real clients do."""

from __future__ import annotations

import socket
import uuid
from datetime import UTC, datetime
from email.utils import format_datetime, make_msgid


def message(
    subject: str = "hello",
    body: str = "Hello there.\r\n",
    sender: str = "alice@sender.test",
    to: str = "bob@example.test",
    extra_headers: str = "",
) -> bytes:
    """A well-formed RFC 5322 message with a unique Message-ID."""
    return (
        f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n"
        f"Date: {format_datetime(datetime.now(UTC))}\r\n"
        f"Message-ID: {make_msgid(idstring=uuid.uuid4().hex, domain='sender.test')}\r\n"
        f"{extra_headers}MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        f"{body}"
    ).encode()


class RawSmtp:
    """A line-level SMTP client for what smtplib will not send (bad input, pipelining)."""

    def __init__(self, port: int, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def reply(self) -> str:
        """One complete (possibly multi-line) reply."""
        lines = []
        while True:
            while b"\r\n" not in self.buf:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError("closed: " + b"\n".join(lines).decode())
                self.buf += chunk
            line, self.buf = self.buf.split(b"\r\n", 1)
            lines.append(line)
            if len(line) < 4 or line[3:4] != b"-":
                return "\n".join(x.decode() for x in lines)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def cmd(self, line: str) -> str:
        self.send(line.encode() + b"\r\n")
        return self.reply()

    def close(self) -> None:
        self.sock.close()


def open_data(port: int, sender: str = "a@sender.test", rcpt: str = "bob@example.test") -> RawSmtp:
    """A session that has said EHLO, MAIL, RCPT and DATA and got 354: send the message."""
    client = RawSmtp(port)
    client.reply()
    client.cmd("EHLO client.test")
    assert client.cmd(f"MAIL FROM:<{sender}>").startswith("250")
    assert client.cmd(f"RCPT TO:<{rcpt}>").startswith("250")
    assert client.cmd("DATA").startswith("354")
    return client
