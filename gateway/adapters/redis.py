"""The Redis client of a gateway node (redis.asyncio), when [redis] url is set.

Redis is shared state between nodes (DNSBL answer cache, list change
notifications); nothing depends on it for correctness, so a node without it
works alone.
"""

from __future__ import annotations

from typing import Any

from gateway.config import Settings
from gateway.outages import OUTAGES


def connect(settings: Settings) -> Any:
    """A redis.asyncio.Redis for [redis] url, or None; connections open lazily."""
    if not settings.redis.url:
        return None
    return _reporting_class().from_url(
        settings.redis.url, socket_timeout=5, socket_connect_timeout=5, health_check_interval=30
    )


def _reporting_class() -> Any:
    """redis.asyncio.Redis whose commands tell gateway.outages when Redis stops or comes
    back (one log line each way, not one per command)."""
    import redis.asyncio as aioredis
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    class ReportingRedis(aioredis.Redis):
        async def execute_command(self, *args: Any, **options: Any) -> Any:
            target = _target(self)
            try:
                result = await super().execute_command(*args, **options)
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                OUTAGES.failed("redis", target, f"{type(exc).__name__}: {exc}")
                raise
            OUTAGES.ok("redis", target)
            return result

    return ReportingRedis


def _target(client: Any) -> str:
    kwargs = client.connection_pool.connection_kwargs
    if "path" in kwargs:
        return str(kwargs["path"])
    return f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}"
