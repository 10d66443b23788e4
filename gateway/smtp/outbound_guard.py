"""Outbound mail: who may relay through us, and which sending accounts are suspended.

Clients in `[outbound] trusted_networks` (the protected server, the users' own
networks), and users logged in on the submission port (gateway.smtp.submission), may
send to any domain: their mail is scanned like inbound mail and relayed to the
recipient's MX. Every such message counts for its sender account; an account
whose message scores at least `suspend_score`, or that sends more than `rate_limit`
messages in `rate_window` seconds (counted in Redis, so all nodes count together; per
node while Redis is away), is suspended (gateway.store.accounts) and its next MAIL is
refused with `suspended_reply`; with `suspend_on_virus`, so is one whose message
carried a virus (the message itself is refused, gateway.pipeline.decide).

Whether an account is suspended is asked at every MAIL; each node keeps the answers
for `suspension_cache` seconds (emptied that often), and empties them at once on a
message on `<prefix>accounts:changed`, which every suspension and restoration
publishes (this guard's own, and the CLI's). Without Redis a change made elsewhere
applies within `suspension_cache` seconds; this node's own suspensions at once.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from typing import Any

from gateway.adapters.redis import follow
from gateway.config import Settings
from gateway.model import Reply, Verdict
from gateway.store import accounts
from gateway.store.db import Database

log = logging.getLogger(__name__)

AUTO_SCORE = "auto:score"
AUTO_RATE = "auto:rate"
AUTO_VIRUS = "auto:virus"
CACHE_MAX = 100_000  # cached answers; over it the cache starts again empty


def channel(prefix: str) -> str:
    return f"{prefix}accounts:changed"


class OutboundGuard:
    def __init__(self, settings: Settings, db: Database, redis: Any, node: str) -> None:
        self.db = db
        self.redis = redis
        self.key_prefix = f"{settings.redis.prefix}outbound-rate:"
        self.node = node
        self.reconfigure(settings)
        self._local: dict[str, tuple[float, int]] = {}  # address -> (window start, count)
        self.prefix = settings.redis.prefix
        self._suspended: dict[str, accounts.Account | None] = {}  # address -> its suspension
        self._background: set[asyncio.Task] = set()

    def reconfigure(self, settings: Settings) -> None:
        """[outbound] read again (SIGHUP): who is trusted and the limits apply to the
        next command; a network taken out stops relaying at once."""
        self.conf = settings.outbound
        self.networks = [ipaddress.ip_network(n, strict=False) for n in self.conf.trusted_networks]

    def trusted(self, ip: str) -> bool:
        """May this client relay to other domains (outbound)?"""
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        return any(address in network for network in self.networks)

    def _text(self, account: accounts.Account) -> str:
        reason = "".join(c for c in account.reason if c.isprintable())[:120]
        return f"Sending account suspended ({reason}); ask your mail administrator"

    def _reply(self, account: accounts.Account) -> Reply:
        if self.conf.suspended_reply == "tempfail":
            return Reply(450, "4.7.1", self._text(account))
        return Reply(550, "5.7.1", self._text(account))

    def auth_reply(self, account: accounts.Account) -> Reply:
        """What AUTH with a suspended account's right password gets (the submission
        port): the AUTH codes of RFC 4954 for `suspended_reply`."""
        if self.conf.suspended_reply == "tempfail":
            return Reply(454, "4.7.0", self._text(account))
        return Reply(535, "5.7.8", self._text(account))

    async def refusal_for(self, sender: str) -> Reply | None:
        """The reply for MAIL from a suspended account, else None."""
        if not sender:
            return None
        address = sender.lower()
        if address in self._suspended:
            found = self._suspended[address]
        else:
            found = await self.db.run(accounts.suspension, sender)
            if len(self._suspended) >= CACHE_MAX:
                self._suspended.clear()
            self._suspended[address] = found
        return self._reply(found) if found is not None else None

    async def run(self) -> None:
        """Until cancelled: keep the cached suspensions fresh (see the module's text)."""
        await follow(
            self.redis,
            channel(self.prefix),
            self.forget,
            self.conf.suspension_cache,
            "accounts",
            log,
        )

    async def forget(self) -> None:
        self._suspended.clear()

    async def count(self, verdict: Verdict) -> None:
        """After an outbound message was judged: suspend its sender for its score or its
        rate. Never raises: a failure here must not change the message's answer."""
        envelope = verdict.ctx.envelope
        sender = envelope.auth_account or envelope.mail_from  # who logged in, else MAIL FROM
        if not sender:
            return
        try:
            viruses = sorted({v for d in verdict.decisions if d.virus for v in d.virus.viruses})
            if viruses and self.conf.suspend_on_virus:
                reason = f"outbound message carried a virus ({', '.join(viruses)})"
                await self._suspend(sender, reason, AUTO_VIRUS)
                return
            score = max((d.score for d in verdict.decisions), default=0.0)
            limit = self.conf.suspend_score
            if limit is not None and score >= limit:
                await self._suspend(sender, f"outbound message scored {score:.1f}", AUTO_SCORE)
                return
            if self.conf.rate_limit is not None:
                sent = await self._rate(sender)
                if sent > self.conf.rate_limit:
                    window = f"{self.conf.rate_window:g} s"
                    reason = f"{sent} messages in {window} (limit {self.conf.rate_limit})"
                    await self._suspend(sender, reason, AUTO_RATE)
        except Exception:
            log.exception("outbound accounting of %s failed", sender)

    async def _suspend(self, sender: str, reason: str, by: str) -> None:
        changed = await self.db.run(accounts.suspend, sender, reason, by, self.node)
        if changed:
            log.warning("suspended sending account %s: %s", sender, reason)
            self._suspended.pop(sender.lower(), None)
            await self._notify(sender)

    async def _notify(self, address: str) -> None:
        """Tell the other nodes to forget their cached answers (never raises)."""
        if self.redis is None:
            return
        try:
            await self.redis.publish(channel(self.prefix), address.lower())
        except Exception as exc:  # noqa: BLE001 - Redis away: they poll
            log.warning("accounts: could not notify the other nodes through Redis: %s", exc)

    async def _rate(self, sender: str) -> int:
        """Messages of this account in the current window, this one included."""
        address = sender.lower()
        if self.redis is not None:
            key = self.key_prefix + address
            try:
                count = int(await self.redis.incr(key))
                if count == 1:
                    await self.redis.expire(key, max(1, int(self.conf.rate_window)))
                return count
            except Exception as exc:  # noqa: BLE001 - Redis away: count on this node
                log.debug("outbound rate in Redis failed (%s); counting locally", exc)
        now = time.monotonic()
        start, count = self._local.get(address, (now, 0))
        if now - start >= self.conf.rate_window:
            start, count = now, 0
        self._local[address] = (start, count + 1)
        return count + 1
