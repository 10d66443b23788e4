"""Refusing listed sources during the SMTP dialogue (550 5.7.1), before any data.

Local block lists and DNSBL zones configured with `reject = true` are checked
for each RCPT. Nothing is refused at connect or MAIL time even when the client
is already known to be listed: abuse@ and postmaster@ of every accepted domain
must still receive its mail (RFC 2142), so the refusal waits until we know the
recipient. The DNSBL query starts at connect time so its answer is cached by
then. A list that cannot be asked in time refuses nothing (fail open).
"""

from __future__ import annotations

import asyncio
import logging

from filters.blocklist.dnsbl import ZoneQuerier, interpret, reversed_ip, should_check
from filters.session import SessionInfo
from gateway.adapters import Ports
from gateway.address import domain_of, is_role_account
from gateway.config import DnsblZone, Settings
from gateway.model import Reply

log = logging.getLogger("mailwarden.blocklist")


def can_reject(zone: DnsblZone) -> bool:
    return zone.reject or any(code.reject for code in zone.codes.values())


class BlocklistSessionCheck:
    """Local block/allow lists and rejecting DNSBLs, answered at RCPT time."""

    name = "blocklist"

    def __init__(self, settings: Settings, ports: Ports) -> None:
        self.settings = settings
        self.ports = ports
        self.zones = [z for z in settings.dnsbl if can_reject(z)]
        self._prefetch: set[asyncio.Task] = set()

    async def check_connect(self, session: SessionInfo) -> Reply | None:
        if self.zones and should_check(session.client_ip, self.settings.blocklist.check_private):
            task = asyncio.create_task(self._dnsbl(session.client_ip))
            self._prefetch.add(task)
            task.add_done_callback(self._prefetch.discard)
        return None

    async def check_mail(self, session: SessionInfo, mail_from: str) -> Reply | None:
        return None

    async def check_rcpt(self, session: SessionInfo, mail_from: str, rcpt: str) -> Reply | None:
        if is_role_account(rcpt):
            return None
        domain = domain_of(rcpt)
        store = self.ports.lists
        if store is not None:
            verdict = store.judge(domain, session.client_ip, mail_from, session.helo)
            if verdict is not None:
                if verdict.list == "allow":
                    return None
                entry = verdict.entry
                scope = f"by {entry.domain}" if entry.domain else "here"
                return Reply(550, "5.7.1", f"{entry.describe()} is blocked {scope}")
        if self.zones and should_check(session.client_ip, self.settings.blocklist.check_private):
            return await self._dnsbl(session.client_ip)
        return None

    async def _dnsbl(self, ip: str) -> Reply | None:
        target = reversed_ip(ip)
        if target is None:
            return None
        querier = ZoneQuerier(self.settings, self.ports)
        jobs = [("dnsbl", zone, target) for zone in self.zones]
        answers, failures = await querier.ask_all(jobs, self.settings.blocklist.budget)
        for _, failure in failures:
            log.info(
                "blocklist: %s not asked about %s at RCPT: %s", failure.zone, ip, failure.reason
            )
        by_zone = {z.zone: z for z in self.zones}
        for _, answer in answers:
            for listing in interpret(by_zone[answer.zone], answer):
                if listing.reject:
                    return Reply(
                        550,
                        "5.7.1",
                        f"Client {ip} is listed by {listing.zone} ({listing.meaning})",
                    )
        return None
