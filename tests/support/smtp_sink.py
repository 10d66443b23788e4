"""A real SMTP server standing in for the protected mail server (the next hop).

It records every message it accepts and can be told to answer RCPT or DATA
with a 4xx/5xx, or be stopped and restarted (next hop down).
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpts: tuple[str, ...]
    data: bytes
    mail_options: tuple[str, ...]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _SinkHandler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.sink.rcpt_replies.get(address.lower())
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session, envelope):
        sender = "" if envelope.mail_from == "<>" else envelope.mail_from
        reply = self.sink.data_replies.get(sender)
        if reply:
            return reply
        with self.sink.lock:
            self.sink.messages.append(
                Received(
                    sender,
                    tuple(envelope.rcpt_tos),
                    envelope.original_content,
                    tuple(envelope.mail_options),
                )
            )
        return "250 2.0.0 Ok: stored"


class _Controller(Controller):
    def factory(self):
        return SMTP(self.handler, decode_data=False, enable_SMTPUTF8=True, hostname="sink.test")


class SmtpSink:
    """`with SmtpSink() as sink:`; `sink.address` is "127.0.0.1:PORT"."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.messages: list[Received] = []
        self.rcpt_replies: dict[str, str] = {}
        self.data_replies: dict[str, str] = {}  # sender -> reply to DATA
        self.lock = threading.Lock()
        self._controller: _Controller | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> SmtpSink:
        self._controller = _Controller(
            _SinkHandler(self), hostname="127.0.0.1", port=self.port, ready_timeout=10
        )
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def wait_for(self, count: int, timeout: float = 15.0) -> list[Received]:
        """Block until at least `count` messages arrived (or fail the test)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.messages) >= count:
                    return list(self.messages)
            time.sleep(0.02)
        with self.lock:
            raise AssertionError(f"sink got {len(self.messages)} message(s), expected {count}")

    def for_rcpt(self, rcpt: str) -> list[Received]:
        with self.lock:
            return [m for m in self.messages if rcpt in m.rcpts]
