"""A gateway node's live copy of the local lists, kept in step with the database.

The database is the record (every node of a cluster shares it); each node
matches against an in-memory `ListSnapshot`. When a list changes, the writer
bumps a version counter in Redis and publishes it; every node subscribed
reloads at once (well within a second). Without Redis, or if a message is
missed, each node also compares the database's version every
`[blocklist] list_refresh` seconds.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from gateway.adapters.redis import follow
from gateway.lists import records as list_records
from gateway.lists.match import ListHit, ListSnapshot

log = logging.getLogger("mailwarden.lists")


def channel(prefix: str) -> str:
    return f"{prefix}lists:changed"


def version_key(prefix: str) -> str:
    return f"{prefix}lists:version"


def notify_sync(redis_url: str | None, prefix: str) -> None:
    """Tell every node that the lists changed (for the CLI, which is not async)."""
    if not redis_url:
        return
    import redis

    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    try:
        version = client.incr(version_key(prefix))
        client.publish(channel(prefix), str(version))
    except redis.RedisError as exc:
        log.warning(
            "lists: could not notify the other nodes through Redis (%s); they "
            "will see the change within [blocklist] list_refresh seconds",
            exc,
        )
    finally:
        client.close()


class ListStore:
    """The snapshot a node matches against, plus the writes that keep nodes in step."""

    def __init__(
        self, db: Any, redis: Any = None, prefix: str = "mailwarden:", refresh: float = 5.0
    ) -> None:
        self.db = db  # gateway.store.db.Database
        self.redis = redis  # redis.asyncio.Redis or None
        self.prefix = prefix
        self.refresh_interval = refresh
        self.snapshot = ListSnapshot(version=None)
        self.loaded_at: datetime | None = None
        self._lock = asyncio.Lock()

    # --- reading -------------------------------------------------------------------

    def judge(
        self,
        domain: str,
        ip: str | None = None,
        sender: str = "",
        helo: str = "",
        now: datetime | None = None,
    ) -> ListHit | None:
        return self.snapshot.judge(domain, now or datetime.now(UTC), ip, sender, helo)

    async def reload(self, force: bool = False) -> bool:
        """Read the lists again if the database version moved; True if reloaded."""
        async with self._lock:
            current = await self.db.run(list_records.version)
            if not force and current == self.snapshot.version and self.loaded_at is not None:
                return False
            version, entries = await self.db.run(list_records.load_entries)
            snapshot = await asyncio.to_thread(ListSnapshot, entries, version)
            self.snapshot = snapshot
            self.loaded_at = datetime.now(UTC)
            log.info("lists: loaded %d entries (version %s)", snapshot.count, version)
            return True

    # --- writing (the node's own API; the CLI uses gateway.lists.records + notify_sync) ------

    async def changed(self) -> None:
        """After a write: reload here and tell the other nodes."""
        await self.reload()
        if self.redis is None:
            return
        try:
            version = await self.redis.incr(version_key(self.prefix))
            await self.redis.publish(channel(self.prefix), str(version))
        except Exception as exc:  # noqa: BLE001 - redis-py raises many kinds
            log.warning("lists: could not notify the other nodes through Redis: %s", exc)

    async def add(self, entry: list_records.Entry) -> tuple[list_records.Entry, bool]:
        result = await self.db.run(list_records.add_entry, entry)
        await self.changed()
        return result

    async def remove(self, list_name: str, kind: str, value: str, domain: str = "") -> int:
        removed = await self.db.run(list_records.remove_entry, list_name, kind, value, domain)
        if removed:
            await self.changed()
        return removed

    # --- staying in step -----------------------------------------------------------

    async def run(self) -> None:
        """Follow changes until cancelled: Redis notifications and the database poll."""
        await self._safe_reload()
        await follow(
            self.redis,
            channel(self.prefix),
            self._safe_reload,
            self.refresh_interval,
            "lists",
            log,
        )

    async def _safe_reload(self) -> None:
        try:
            await self.reload()
        except Exception as exc:  # noqa: BLE001 - keep the lists in force, try again later
            log.error("lists: reload failed, the lists in force are unchanged: %s", exc)
