"""The Redis client of a gateway node (redis.asyncio), when [redis] url is set.

Redis is shared state between nodes (DNSBL answer cache, list change
notifications); nothing depends on it for correctness, so a node without it
works alone.
"""

from __future__ import annotations

from typing import Any

from gateway.config import Settings


def connect(settings: Settings) -> Any:
    """A redis.asyncio.Redis for [redis] url, or None; connections open lazily."""
    if not settings.redis.url:
        return None
    import redis.asyncio as aioredis

    return aioredis.from_url(
        settings.redis.url, socket_timeout=5, socket_connect_timeout=5, health_check_interval=30
    )
