"""The listening socket, its sessions, connection limits and a graceful stop."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections import Counter

from gateway.config import Settings, parse_host_port
from gateway.smtp.handler import GatewayHandler
from gateway.smtp.protocol import GatewaySMTP

log = logging.getLogger(__name__)


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


class Guard:
    """The server's ConnectionGuard: the limiter, the set of live sessions (for a
    graceful stop) and the idle timeout before MAIL."""

    def __init__(self, settings: Settings, sessions: set[GatewaySMTP]) -> None:
        smtp = settings.smtp
        self.limiter = SessionLimiter(smtp.max_sessions, smtp.max_sessions_per_ip)
        self.sessions = sessions
        self.timeout = smtp.timeout

    def admit(self, session: GatewaySMTP, ip: str) -> str | None:
        refusal = self.limiter.acquire(ip)
        if refusal is None:
            self.sessions.add(session)
        return refusal

    def release(self, session: GatewaySMTP, ip: str) -> None:
        self.limiter.release(ip)
        self.sessions.discard(session)

    def idle_timeout(self) -> float | None:
        return None


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
        self.sessions: set[GatewaySMTP] = set()
        self.guard = Guard(settings, self.sessions)
        self.limiter = self.guard.limiter
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
            guard=self.guard,
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
