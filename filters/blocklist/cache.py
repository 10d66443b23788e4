"""Cached DNS blocklist answers: shared through Redis when configured, else in process.

A DNSBL answer is a fact about the world with a TTL set by the list; asking again
before it expires only costs time and the list's goodwill. Several gateway nodes
sharing Redis share their answers. Failures (timeouts, SERVFAIL) are never cached.
"""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from typing import Any

log = logging.getLogger("mailwarden.blocklist")

MISS = object()


class LocalCache:
    """A bounded in-process cache: least recently used entries go first."""

    def __init__(self, size: int = 50_000) -> None:
        self.size = size
        self._data: OrderedDict[str, tuple[float, list[str]]] = OrderedDict()

    async def get(self, key: str) -> Any:
        entry = self._data.get(key)
        if entry is None:
            return MISS
        expires, value = entry
        if expires <= time.monotonic():
            self._data.pop(key, None)
            return MISS
        self._data.move_to_end(key)
        return list(value)

    async def put(self, key: str, value: list[str], ttl: int) -> None:
        if ttl <= 0:
            return
        self._data[key] = (time.monotonic() + ttl, list(value))
        self._data.move_to_end(key)
        while len(self._data) > self.size:
            self._data.popitem(last=False)


class RedisCache:
    """Answers in Redis under `<prefix>dnsbl:<query name>`, expiring with their TTL.

    A Redis failure is a cache miss, never a lookup failure.
    """

    def __init__(self, redis: Any, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix + "dnsbl:"

    async def get(self, key: str) -> Any:
        try:
            raw = await self.redis.get(self.prefix + key)
        except Exception as exc:  # noqa: BLE001 - redis-py raises many kinds
            log.warning("blocklist cache: redis get failed: %s", exc)
            return MISS
        if raw is None:
            return MISS
        try:
            value = json.loads(raw)
        except ValueError:
            return MISS
        return [str(v) for v in value] if isinstance(value, list) else MISS

    async def put(self, key: str, value: list[str], ttl: int) -> None:
        if ttl <= 0:
            return
        try:
            await self.redis.set(self.prefix + key, json.dumps(value), ex=ttl)
        except Exception as exc:  # noqa: BLE001
            log.warning("blocklist cache: redis set failed: %s", exc)


_local: LocalCache | None = None


def cache_for(redis: Any, prefix: str, size: int) -> LocalCache | RedisCache:
    """Redis when the node has it; else one process-wide cache (filter and RCPT check share)."""
    global _local
    if redis is not None:
        return RedisCache(redis, prefix)
    if _local is None or _local.size != size:
        _local = LocalCache(size)
    return _local
