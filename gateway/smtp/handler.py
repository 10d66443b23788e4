"""SMTP hooks: relay control, address checks, session checks, then intake.

The handler refuses what it can as early as it can (relay, routing tricks,
recipient count, session checks), and hands DATA to the intake, which filters
before answering: a rejection is an SMTP reply, never a bounce to a forged sender.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Sequence
from typing import Any

from aiosmtpd.smtp import Envelope as SmtpEnvelope
from aiosmtpd.smtp import Session

from filters.session import SessionCheck, SessionInfo
from gateway.adapters.dns import DnsError, NoRecord, Resolver
from gateway.config import Settings
from gateway.model import Envelope, Reply
from gateway.monitor import events
from gateway.smtp.intake import Intake
from gateway.smtp.outbound_guard import OutboundGuard
from gateway.store import ledger

log = logging.getLogger(__name__)

NULL_SENDER = "<>"  # how aiosmtpd hands us the null reverse-path


_LOCAL_DOT_ATOM = re.compile(r"^[^\s\"(),:;<>@\[\\\]]+$")
_DOMAIN = re.compile(r"^(\[[^\]\s]+\]|[^\s@\[\]\\\"(),:;<>]+)$")


def routing_syntax(local: str) -> str | None:
    """The other routing syntax a local part carries, if any: a mail server behind
    us that still honours it (sendmail, old Exchange, Postfix's allow_percent_hack)
    would relay the message elsewhere, making us an open relay."""
    if len(local) >= 2 and local[0] == local[-1] == '"':
        inner = local[1:-1]
        if "@" in inner:
            return "a quoted address"
        local = inner
    if "%" in local:
        return "the percent hack"
    if "!" in local:
        return "a bang path"
    return None


REFUSED_ROUTING = Reply(550, "5.7.1", "Relaying denied: routing syntax in the local part")
NON_ASCII_WITHOUT_SMTPUTF8 = Reply(553, "5.6.7", "Non-ASCII address without the SMTPUTF8 parameter")
BAD_UTF8 = Reply(553, "5.6.7", "Address is not valid UTF-8")


def address_encoding_refusal(address: str, smtputf8: bool) -> Reply | None:
    """RFC 6531 3.5: a non-ASCII address needs MAIL ... SMTPUTF8; bytes that are not
    UTF-8 (decoded by aiosmtpd as surrogates) are never an address."""
    if address.isascii():
        return None
    try:
        address.encode("utf-8")
    except UnicodeEncodeError:
        return BAD_UTF8
    return None if smtputf8 else NON_ASCII_WITHOUT_SMTPUTF8


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
        guard: OutboundGuard | None = None,
    ):
        self.settings = settings
        self.intake = intake
        self.checks = list(checks)
        self.resolver = resolver
        self.guard = guard  # outbound: trusted clients and suspended accounts
        self._background: set[asyncio.Task] = set()

    def reconfigure(self, settings: Settings) -> None:
        """Settings read again (SIGHUP): accepted domains and limits apply from the
        next command."""
        self.settings = settings

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

    def _outbound(self, session: Session) -> bool:
        """Is the client in [outbound] trusted_networks (may relay, is counted)?"""
        return bool(self.guard and session.peer and self.guard.trusted(session.peer[0]))

    def _account(self, session: Session) -> str | None:
        """The sending account the client logged in as (the submission port)."""
        return None

    def on_connect(self, session: Session) -> None:
        """Connect-time checks (the DNSBL prefetch) start now, in the background: the
        greeting never waits for them. A refusal one of them finds is answered at MAIL,
        as Postfix's smtpd_delay_reject does, so the client hears why."""
        if self.checks and session.peer:
            info = SessionInfo(client_ip=session.peer[0], helo="")
            session.connect_checks = asyncio.ensure_future(self._connect_checks(info))

    async def _connect_checks(self, info: SessionInfo) -> tuple[Reply, str] | None:
        for check in self.checks:
            refusal = await check.check_connect(info)
            if refusal is not None:
                return refusal, check.name
        return None

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

    offers_auth = False  # an MX offers no AUTH; the submission port does

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        self._start_ptr_lookup(session)
        out = [r for r in responses[:-1] if self.offers_auth or not r.startswith("250-AUTH")]
        out += ["250-PIPELINING", "250-ENHANCEDSTATUSCODES", "250 HELP"]
        return out

    async def handle_MAIL(self, server, session, envelope: SmtpEnvelope, address, mail_options):
        sender = "" if address == NULL_SENDER else address
        if sender and split_address(sender) is None:
            reply = "501 5.1.7 Bad sender address syntax"
            return self._log_refusal(session, "mail", sender, None, reply, "syntax")
        encoding = address_encoding_refusal(sender, envelope.smtp_utf8)
        if encoding is not None:
            return str(encoding)
        refusal = await self._sender_refusal(session, sender)
        if refusal is not None:
            return refusal
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Ok"

    async def _sender_refusal(self, session: Session, sender: str) -> str | None:
        """The reply refusing this MAIL (connect and session checks, a suspended
        account), else None."""
        info = self._info(session)
        at_connect = getattr(session, "connect_checks", None)
        found = await at_connect if at_connect is not None else None
        if found is not None:
            refusal, source = found
            self._record_refusal(info, "connect", sender, None, refusal, source)
            return str(refusal)
        for check in self.checks:
            refusal = await check.check_mail(info, sender)
            if refusal is not None:
                self._record_refusal(info, "mail", sender, None, refusal, check.name)
                return str(refusal)
        if self.guard is not None and self._outbound(session):
            suspended = await self.guard.refusal_for(sender)
            if suspended is not None:
                self._record_refusal(info, "mail", sender, None, suspended, "suspended")
                return str(suspended)
        return None

    async def handle_RCPT(self, server, session, envelope: SmtpEnvelope, address, rcpt_options):
        parts = split_address(address)
        if parts is None:
            reply = "501 5.1.3 Bad recipient address syntax"
            return self._log_refusal(session, "rcpt", _sender(envelope), address, reply, "syntax")
        encoding = address_encoding_refusal(address, envelope.smtp_utf8)
        if encoding is not None:
            return str(encoding)
        local, domain = parts
        if not self.settings.accepts(domain) and not self._outbound(session):
            denied = Reply(550, "5.7.1", "Relaying denied: we do not accept mail for that domain")
            self._record_refusal(
                self._info(session), "rcpt", _sender(envelope), address, denied, "relay"
            )
            return str(denied)
        trick = routing_syntax(local)
        if trick and domain not in self.settings.domains.allow_routing_syntax:
            log.info("refused %s: %s", address, trick)
            self._record_refusal(
                self._info(session), "rcpt", _sender(envelope), address, REFUSED_ROUTING, "relay"
            )
            return str(REFUSED_ROUTING)
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
            outbound=self._outbound(session),
            auth_account=self._account(session),
        )
        reply = await self.intake.receive(env, envelope.original_content or b"")
        return str(reply)


def _refusal_row(
    info: SessionInfo, stage: str, sender: str, rcpt: str | None, reply: str, source: str
) -> dict[str, Any]:
    return ledger.refusal_row(
        client_ip=info.client_ip,
        client_hostname=info.client_hostname,
        helo=info.helo,
        stage=stage,
        sender=sender,
        rcpt=rcpt,
        reply=reply,
        source=source,
    )


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
