"""A gateway process's copy of the antivirus policies, kept in step with the database.

Reading the table for every message was the one database read left on the SMTP
path (a pool hop, a connection and a SELECT: about 6% of the GIL samples at
saturation). Each process holds every row instead (only what admins set, so few)
and reads them all again when a change is announced on `<prefix>av_policies:changed`
(gateway.actions.policy publishes it) and every `[clamav] policy_refresh` seconds,
which also covers a lost notice and Redis being down. A change therefore applies
within a second with Redis and within `policy_refresh` without it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from gateway.adapters.redis import follow, publish_sync
from gateway.model import AvPolicy
from gateway.store import av_policy

log = logging.getLogger("mailwarden.av_policy")

WHAT = "antivirus policies"


def channel(prefix: str) -> str:
    return f"{prefix}av_policies:changed"


def notify_sync(redis_url: str | None, prefix: str) -> None:
    """Tell every node that a policy changed (sync: the CLI and the console's actions);
    never raises: without Redis the nodes' poll picks the change up."""
    publish_sync(redis_url, channel(prefix), "changed", WHAT, log)


class PolicyCache:
    """Every av_policies row of the database, as last read; resolves recipients from it."""

    def __init__(self, db: Any, redis: Any = None, prefix: str = "", refresh: float = 5.0) -> None:
        self.db = db  # gateway.store.db.Database
        self.redis = redis  # redis.asyncio.Redis or None
        self.prefix = prefix
        self.refresh = refresh
        self.rows: Mapping[str, Mapping[str, Any]] | None = None  # None: not read yet
        self._lock = asyncio.Lock()

    async def policies(self, rcpts: Sequence[str]) -> dict[str, AvPolicy]:
        """For the pipeline (its AvPolicyLoader): no database read once loaded."""
        rows = self.rows
        if rows is None:  # not loaded yet: a failure here fails the message, as before
            rows = await self.reload()
        return av_policy.policies_from(rows, rcpts)

    async def reload(self) -> Mapping[str, Mapping[str, Any]]:
        """Read every row again (a read that starts after a change sees it)."""
        async with self._lock:
            rows = await self.db.run(av_policy.all_rows)
            if rows != self.rows:
                log.info("%s: %d row%s in force", WHAT, len(rows), "" if len(rows) == 1 else "s")
            self.rows = rows
            return rows

    async def run(self) -> None:
        """Follow changes until cancelled: Redis notices and the database poll."""
        await follow(self.redis, channel(self.prefix), self._safe_reload, self.refresh, WHAT, log)

    async def _safe_reload(self) -> None:
        try:
            await self.reload()
        except Exception as exc:  # noqa: BLE001 - keep the policies in force, try again later
            log.error("%s: reload failed, the policies in force are unchanged: %s", WHAT, exc)
