"""The listening socket, its sessions, connection limits and a graceful stop."""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import ssl
from collections import Counter

from gateway.config import Settings, parse_host_port
from gateway.smtp.handler import GatewayHandler
from gateway.smtp.protocol import GatewaySMTP, SubmissionSMTP

log = logging.getLogger(__name__)
# connections the kernel holds before we accept them (capped by net.core.somaxconn):
# asyncio's 100 overflowed in bursts, and a dropped SYN costs the client a 1-3 s retry
LISTEN_BACKLOG = 1024


@functools.lru_cache(maxsize=4096)
def network_of(ip: str) -> str:
    """The /24 (IPv4) or /48 (IPv6) a client address belongs to: one sender's network
    (asked at every connect and disconnect: the addresses seen lately are kept)."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


class SessionLimiter:
    """Concurrent sessions in total, per client IP and per network (/24, /48): a
    flood from a few networks cannot take every slot. Full: answered with 421."""

    def __init__(self, total: int, per_ip: int, per_network: int | None = None) -> None:
        self.total, self.per_ip = total, per_ip
        self.per_network = per_network or max(1, total // 4)
        self.by_ip: Counter[str] = Counter()
        self.by_network: Counter[str] = Counter()
        self.active = 0

    def acquire(self, ip: str) -> str | None:
        if self.active >= self.total:
            return "421 4.7.0 Too many connections, try again later"
        if self.by_ip[ip] >= self.per_ip:
            return "421 4.7.0 Too many connections from your address, try again later"
        network = network_of(ip)
        if self.by_network[network] >= self.per_network:
            return "421 4.7.0 Too many connections from your network, try again later"
        self.by_ip[ip] += 1
        self.by_network[network] += 1
        self.active += 1
        return None

    def release(self, ip: str) -> None:
        self.active -= 1
        for counter, key in ((self.by_ip, ip), (self.by_network, network_of(ip))):
            counter[key] -= 1
            if counter[key] <= 0:
                del counter[key]


class Guard:
    """The server's ConnectionGuard: the limiter, the set of live sessions (for a
    graceful stop) and the idle timeout before MAIL."""

    def __init__(self, settings: Settings, sessions: set[GatewaySMTP]) -> None:
        smtp = settings.smtp
        self.limiter = SessionLimiter(
            smtp.max_sessions, smtp.max_sessions_per_ip, smtp.max_sessions_per_network
        )
        self.sessions = sessions
        self.idle = min(smtp.idle_timeout, smtp.timeout)

    def admit(self, session: GatewaySMTP, ip: str) -> str | None:
        refusal = self.limiter.acquire(ip)
        if refusal is None:
            self.sessions.add(session)
        return refusal

    def release(self, session: GatewaySMTP, ip: str) -> None:
        self.limiter.release(ip)
        self.sessions.discard(session)

    def idle_timeout(self) -> float | None:
        """Before MAIL, a session may be silent for `idle_timeout` seconds (a third of
        that once three quarters of the slots are taken), as Postfix's smtpd_timeout
        under stress: idle connections cannot hold the gateway for long."""
        limiter = self.limiter
        if limiter.active * 4 >= limiter.total * 3:
            return self.idle / 3
        return self.idle


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    smtp = settings.smtp
    if smtp.tls_cert is None or smtp.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(smtp.tls_cert), str(smtp.tls_key))
    return context


MX, SUBMISSION, SUBMISSION_TLS = "mx", "submission", "submission-tls"


class SmtpServer:
    """One listening socket, its sessions and a graceful stop. `kind` is the MX port
    ([smtp] listen), or the submission port with STARTTLS or implicit TLS."""

    def __init__(
        self, settings: Settings, handler: GatewayHandler, kind: str = MX, listen: str | None = None
    ) -> None:
        self.settings = settings
        self.handler = handler
        self.kind = kind
        self.listen = listen or settings.smtp.listen
        self.sessions: set[GatewaySMTP] = set()
        self.guard = Guard(settings, self.sessions)
        self.limiter = self.guard.limiter
        self._server: asyncio.base_events.Server | None = None
        self._tls = tls_context(settings)
        limit = settings.smtp.max_message_size + 4096
        base = GatewaySMTP if kind == MX else SubmissionSMTP

        # A whole message may be one long line: accept it (bounded by the size
        # limit) rather than refuse real-world mail with lines over 998 chars.
        class _Protocol(base):  # type: ignore[valid-type,misc]
            line_length_limit = limit

        self._protocol_class = _Protocol

    def _protocol(self) -> GatewaySMTP:
        smtp = self.settings.smtp
        extra: dict = {}
        if self.kind != MX:
            extra["implicit_tls"] = self.kind == SUBMISSION_TLS
        return self._protocol_class(
            self.handler,
            loop=asyncio.get_running_loop(),  # else aiosmtpd looks it up with warnings caught
            guard=self.guard,
            data_size_limit=smtp.max_message_size,
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname=smtp.hostname,
            ident="mailwarden ESMTP",
            # implicit TLS: the socket is TLS already, no STARTTLS inside it
            tls_context=None if self.kind == SUBMISSION_TLS else self._tls,
            require_starttls=smtp.require_tls and self.kind == MX,
            timeout=smtp.timeout,
            **extra,
        )

    async def start(self) -> tuple[str, int]:
        host, port = parse_host_port(self.listen)
        loop = asyncio.get_running_loop()
        # several worker processes share the port; a lone gateway must not share it
        # silently with another one started by mistake
        shared = self.settings.smtp.processes > 1
        self._server = await loop.create_server(
            self._protocol,
            host=host,
            port=port,
            reuse_port=shared or None,
            ssl=self._tls if self.kind == SUBMISSION_TLS else None,
            backlog=LISTEN_BACKLOG,
        )
        sock = self._server.sockets[0].getsockname()
        log.info("listening on %s:%s (%s)", sock[0], sock[1], self.kind)
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
