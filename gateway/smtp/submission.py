"""The submission port: the protected server's users log in and send to any domain.

Only inside TLS (STARTTLS, or implicit TLS on a port like 465) are AUTH PLAIN and
LOGIN offered; MAIL before AUTH gets 530 5.7.0 (gateway.smtp.protocol.SubmissionSMTP).
A login is a sending account with a password (`mailwarden accounts passwd`), checked
with argon2 in one of LOGIN_THREADS threads of its own (an argon2 check takes 64 MiB
and tens of milliseconds: a flood of logins waits there, never in the database's
pool that every MAIL uses). Failed logins are rows of the console's login_attempts
(service "submission"), so the limit per account and per client address holds across
every node. The account must be the envelope sender (or, with `[outbound]
auth_sender = "domain"`, share its domain), else 553 5.7.1; a suspended account is
refused at AUTH and at MAIL. What is accepted is scanned and relayed exactly like
mail from `[outbound] trusted_networks`, counted for the logged-in account.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from aiosmtpd.smtp import Session
from sqlalchemy.engine import Engine

from gateway.adapters.dns import Resolver
from gateway.address import domain_of
from gateway.config import Settings
from gateway.model import Reply
from gateway.smtp.handler import GatewayHandler
from gateway.smtp.intake import Intake
from gateway.smtp.outbound_guard import OutboundGuard
from gateway.store import accounts, sessions

log = logging.getLogger(__name__)

AUTH_OK = "235 2.7.0 Authentication successful"
AUTH_INVALID = "535 5.7.8 Authentication credentials invalid"
AUTH_LIMITED = "454 4.7.0 Too many failed logins; try again later"
LOGIN_THREADS = 2


def _login(
    engine: Engine, limit: sessions.LoginLimit, name: str, password: str, client: str
) -> tuple[bool, accounts.Account | None]:
    """(over the limit, the account if the password is right); every attempt counted."""
    if limit.exceeded(engine, name, client):
        return True, None
    account = accounts.authenticate(engine, name, password)
    sessions.note_attempt(engine, name, client, account is not None, limit.service)
    return False, account


class SubmissionHandler(GatewayHandler):
    """GatewayHandler for the submission port: AUTH, and the account's own sender."""

    offers_auth = True

    def __init__(
        self,
        settings: Settings,
        intake: Intake,
        guard: OutboundGuard,
        resolver: Resolver | None = None,
    ) -> None:
        # no DNSBL or other session checks: users send from any network (a hotel,
        # a dynamic address listed by the PBL); their login is the check
        super().__init__(settings, intake, (), resolver, guard)
        self.guard: OutboundGuard = guard
        self.reconfigure(settings)
        self._logins = ThreadPoolExecutor(LOGIN_THREADS, thread_name_prefix="auth")

    def reconfigure(self, settings: Settings) -> None:
        super().reconfigure(settings)
        out = settings.outbound
        self.limit = sessions.LoginLimit(
            out.auth_max_failures_account,
            out.auth_max_failures_address,
            timedelta(seconds=out.auth_window),
            sessions.SUBMISSION,
        )

    def _outbound(self, session: Session) -> bool:
        return bool(session.authenticated)

    def _account(self, session: Session) -> str | None:
        return session.auth_data if session.authenticated else None

    async def authenticate(
        self, session: Session, login: bytes, password: bytes
    ) -> tuple[str | None, str]:
        client = session.peer[0] if session.peer else "unknown"
        name = login.decode("utf-8", "replace").strip().lower()
        limited, account = await asyncio.get_running_loop().run_in_executor(
            self._logins,
            _login,
            self.intake.db.engine,
            self.limit,
            name,
            password.decode("utf-8", "replace"),
            client,
        )
        if limited:
            log.warning("submission: %s: login as %r refused: too many failures", client, name)
            return None, AUTH_LIMITED
        if account is None:
            log.info("submission: %s: failed login as %r", client, name)
            return None, AUTH_INVALID
        if account.suspended:
            reply = self.guard.auth_reply(account)
            info = self._info(session)
            self._record_refusal(info, "auth", account.address, None, reply, "suspended")
            return None, str(reply)
        log.info("submission: %s logged in as %s", client, account.address)
        return account.address, AUTH_OK

    def _may_send_as(self, account: str, sender: str) -> bool:
        if self.settings.outbound.auth_sender == "domain":
            return domain_of(sender) == domain_of(account)
        return sender.lower() == account

    async def _sender_refusal(self, session: Session, sender: str) -> str | None:
        account = self._account(session)
        assert account is not None  # aiosmtpd answers 530 to MAIL before AUTH
        info = self._info(session)
        if not sender or not self._may_send_as(account, sender):
            reply = Reply(553, "5.7.1", f"Sender address not owned by {account}")
            self._record_refusal(info, "mail", sender, None, reply, "auth_sender")
            return str(reply)
        for address in dict.fromkeys((account, sender.lower())):
            suspended = await self.guard.refusal_for(address)
            if suspended is not None:
                self._record_refusal(info, "mail", sender, None, suspended, "suspended")
                return str(suspended)
        return None
