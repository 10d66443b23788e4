"""Checks made during the SMTP dialogue, before the message is read.

A check answers None (go on) or a `Reply` (refuse now, with that 4xx/5xx). The
SMTP handler calls every configured check at each stage; relay control itself
(accepted domains) is built into the handler and comes first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from gateway.model import Reply


@dataclass(frozen=True)
class SessionInfo:
    client_ip: str
    helo: str
    client_hostname: str | None = None
    tls: bool = False


class SessionCheck(Protocol):
    name: str

    async def check_connect(self, session: SessionInfo) -> Reply | None: ...

    async def check_mail(self, session: SessionInfo, mail_from: str) -> Reply | None: ...

    async def check_rcpt(self, session: SessionInfo, mail_from: str, rcpt: str) -> Reply | None:
        """Called for accepted-domain recipients only; abuse@/postmaster@ must never be
        refused for spam reasons (RFC 2142), so checks skip them."""
        ...
